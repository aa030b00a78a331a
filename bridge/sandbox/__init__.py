"""Local stand-ins for the outside systems, used by `bridge demo`, tests and benches."""
