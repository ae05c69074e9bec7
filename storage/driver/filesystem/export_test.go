package filesystem

// NameTemps makes d name its temporary files, as on a file system without
// O_TMPFILE, and reports whether they were unnamed.
func NameTemps(d *Driver) (wasUnnamed bool) {
	wasUnnamed = d.unnamed
	d.unnamed = false
	return wasUnnamed
}
