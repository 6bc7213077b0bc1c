/* A WASI preview1 hello-world command. */
#include <stdio.h>

int main(void) {
    puts("hello from wasmctl");
    return 0;
}
