#!/usr/bin/env python3
"""ports.py COUNT - prints the first of COUNT consecutive TCP ports that are
free on 127.0.0.1 right now (each one bound and released), picked at random in
20000-59999 so that concurrent runs rarely race for the same block. Exit 1 if
no block was found in 200 tries. Used by bench/registry."""
import random
import socket
import sys


def free(port):
    """True if 127.0.0.1:port can be bound now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        if all(free(p) for p in range(base, base + count)):
            print(base)
            return
    sys.exit("ports.py: no %d free consecutive ports found" % count)


if __name__ == "__main__":
    main()
