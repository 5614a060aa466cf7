//go:build !husk_faults

package faults

// Enabled says whether this binary was built with fault points.
const Enabled = false

// Point does nothing in a release build.
func Point(string) {}
