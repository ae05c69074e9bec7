package registry

import "testing"

// SetBootID makes the machine seem to have booted as id until t ends.
func SetBootID(t testing.TB, id string) {
	was := bootID
	bootID = func() string { return id }
	t.Cleanup(func() { bootID = was })
}

// Drivers are the backends the package's tests run on, by name.
var Drivers = manifestDrivers
