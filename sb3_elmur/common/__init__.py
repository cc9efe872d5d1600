"""Parts shared by the algorithms, examples and benchmarks."""
