/*
 * An echo server over a pre-opened listening socket (fd 3). wasi-libc has no
 * socket(), but accept/recv/send/shutdown become the preview1 sock_* imports.
 */
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int conn = accept(3, NULL, NULL);
    if (conn < 0) {
        return 1;
    }
    char buf[256];
    ssize_t len = recv(conn, buf, sizeof buf, 0);
    if (len > 0) {
        send(conn, buf, (size_t)len, 0);
    }
    shutdown(conn, SHUT_RDWR);
    close(conn);
    return 0;
}
