// Package yamldoc holds what Lading's YAML files (the configuration, the
// access policy) share in how they are read.
package yamldoc

import (
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// Empty reports whether doc sets nothing: no content, or null.
func Empty(doc *yaml.Node) bool {
	return len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null"
}

// NoMore reads what dec holds after its first document and refuses a
// second one that sets anything (after a line of ---): it would be
// dropped unread, and with it whatever it says.
func NoMore(dec *yaml.Decoder) error {
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !Empty(&more) {
			return fmt.Errorf("line %d: a second YAML document (after ---); put everything in one", more.Line)
		}
	}
}
