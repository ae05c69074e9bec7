package filesystem

// TempWays are the ways a driver can make its temporary files: unnamed and
// linked by descriptor, unnamed and linked through /proc, or named, as on
// a file system without O_TMPFILE or without a journal.
var TempWays = []string{"unnamed", "unnamed-proc", "named"}

// UseTemps makes d make its temporary files the way given, and reports
// whether it can here (it always can name them). Unnamed files are used
// where the file system makes them, journal or not: the tests check their
// handling, not a crash.
func UseTemps(d *Driver, way string) bool {
	switch way {
	case "unnamed":
		d.unnamed = d.canUnnamed && d.byFD
	case "unnamed-proc":
		d.byFD = false
		d.unnamed = d.canUnnamed
	default:
		d.unnamed = false
		return true
	}
	return d.unnamed
}

// TempsUnnamed reports whether d makes unnamed temporary files, and
// whether it could.
func TempsUnnamed(d *Driver) (unnamed, could bool) { return d.unnamed, d.canUnnamed }
