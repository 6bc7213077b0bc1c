/* A TCP echo loop on a socket the host pre-opens as fd 3 (WASI preview1 has accept, recv,
 * send and shutdown, but no socket()). It compiles to sock_accept, sock_recv, sock_send.
 *
 * Build: python -m ziglang cc --target=wasm32-wasi -O2 -s \
 *          examples/modules/echo_server.c -o examples/modules/echo_server.wasm
 */
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    char buffer[512];
    for (;;) {
        int client = accept(3, 0, 0);
        if (client < 0) return 1;
        ssize_t n;
        while ((n = recv(client, buffer, sizeof buffer, 0)) > 0) {
            send(client, buffer, (size_t)n, 0);
        }
        shutdown(client, SHUT_RDWR);
        close(client);
    }
}
