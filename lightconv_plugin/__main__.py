"""``python -m lightconv_plugin --user-dir`` prints the folder to pass to fairseq's --user-dir."""

import argparse
import os


def main():
    parser = argparse.ArgumentParser(prog="python -m lightconv_plugin")
    parser.add_argument("--user-dir", action="store_true", help="print the plugin folder for fairseq --user-dir")
    args = parser.parse_args()
    if not args.user_dir:
        parser.print_help()
        raise SystemExit(2)
    # Found from this file rather than by importing the package: importing it
    # pulls in fairseq, which is slow and noisy for a path lookup.
    print(os.path.dirname(os.path.abspath(__file__)))


if __name__ == "__main__":
    main()
