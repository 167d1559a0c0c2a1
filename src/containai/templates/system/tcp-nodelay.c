/*
 * containai TCP_NODELAY shim (preloaded into sshd by the entrypoint, LD_PRELOAD).
 *
 * OpenSSH's sshd turns Nagle's algorithm off only once a session is set up, so
 * every login's key exchange and authentication stall on delayed ACKs (two
 * ~40 ms waits on loopback, measured). Setting TCP_NODELAY on each socket
 * sshd accepts removes them. Errors of the extra setsockopt (a Unix socket)
 * are ignored and errno is left as accept(2) set it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd)
{
    if (fd < 0)
        return;
    int saved = errno, one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    errno = saved;
}

int accept(int s, struct sockaddr *addr, socklen_t *len)
{
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int fd = real(s, addr, len);
    nodelay(fd);
    return fd;
}

int accept4(int s, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int fd = real(s, addr, len, flags);
    nodelay(fd);
    return fd;
}
