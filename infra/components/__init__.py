"""One ComponentResource per file: what an environment or the platform is made of."""
