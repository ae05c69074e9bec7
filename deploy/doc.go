// Package deploy holds no code: its folders are ways to run Lading
// (kubernetes/ manifests, a systemd/ unit), and its tests check them
// against what lading serve takes: the configuration they carry, the ports
// and paths it names, and the time a stop needs.
package deploy
