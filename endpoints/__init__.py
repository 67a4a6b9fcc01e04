"""HTTP-trigger functions: each translates between HTTP and the domain in `shared/`, nothing more."""
