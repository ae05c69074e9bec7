module github.com/lading-registry/lading

go 1.26
