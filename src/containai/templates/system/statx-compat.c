/*
 * containai statx compatibility shim (preloaded through /etc/ld.so.preload).
 *
 * Older gVisor releases (e.g. Debian bookworm's runsc 2022-12-19) reject
 * statx(2) calls that carry AT_NO_AUTOMOUNT with EINVAL, which breaks
 * coreutils (`ls -l`, `stat`) inside the sandbox. A container has no
 * automount points, so retrying without the flag is exact. Under runc the
 * first call succeeds and nothing else happens.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf)
{
    long r = syscall(SYS_statx, dirfd, path, flags, mask, buf);
    if (r == -1 && errno == EINVAL && (flags & AT_NO_AUTOMOUNT)) {
        r = syscall(SYS_statx, dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
    }
    return (int)r;
}
