package filesystem

// TempWays are the ways a driver can make its temporary files: unnamed and
// linked by descriptor, unnamed and linked through /proc, or named, as on
// a file system without O_TMPFILE.
var TempWays = []string{"unnamed", "unnamed-proc", "named"}

// UseTemps makes d make its temporary files the way given, and reports
// whether it can here (it always can name them).
func UseTemps(d *Driver, way string) bool {
	switch way {
	case "unnamed":
		return d.unnamed && d.byFD
	case "unnamed-proc":
		d.byFD = false
		return d.unnamed
	}
	d.unnamed = false
	return true
}
