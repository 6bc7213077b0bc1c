/*
 * Imports that no libc declares, forced with import attributes: WasmEdge's
 * socket-creating preview1 extension and its (since removed) HTTPS plugin.
 */
#include <stdint.h>

__attribute__((import_module("wasi_snapshot_preview1"), import_name("sock_open")))
int32_t sock_open(int32_t address_family, int32_t socket_type, int32_t *fd);

__attribute__((import_module("wasmedge_httpsreq"), import_name("send_data")))
void send_data(const char *host, int32_t host_len, int32_t port, const char *body,
               int32_t body_len);

int main(void) {
    static const char host[] = "example.com";
    static const char body[] = "GET / HTTP/1.0\r\n\r\n";
    int32_t fd = -1;
    if (sock_open(1, 1, &fd) != 0) {
        send_data(host, sizeof host - 1, 443, body, sizeof body - 1);
    }
    return fd < 0;
}
