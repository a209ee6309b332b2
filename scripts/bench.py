"""Run the docqa benchmark from a checkout: the same code as `docqa bench [--quick] [--out DIR]`."""

import sys

from docqa.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
