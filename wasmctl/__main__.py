"""`python -m wasmctl`."""

from wasmctl.cli import main

if __name__ == "__main__":
    main()
