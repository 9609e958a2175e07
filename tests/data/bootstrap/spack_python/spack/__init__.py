"""Stand-in for Spack's package, for `spack python` in the bootstrap tests."""
