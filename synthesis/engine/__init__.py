"""Pure logic: no threads, no I/O. Everything here is unit-tested on its own."""
