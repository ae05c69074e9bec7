package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lading-registry/lading/storage/driver"
)

// Format is the version of the storage layout (layout.go) this build reads
// and writes. A change that a build of the format before would misread
// (a moved path, a kind of object its collector would take for garbage)
// raises it; the builds before it then refuse the store instead of
// damaging it, which is why the marker is written before any such change.
const Format = 1

// formatPath holds the store's format marker.
const formatPath = "/format"

type formatMarker struct {
	Format int `json:"format"`
}

// ErrFormat is wrapped by CheckFormat's refusals of the store itself, as
// opposed to a storage that failed to answer; ErrNewerFormat by the
// refusal of a store a newer build wrote.
var (
	ErrFormat      = errors.New("store format")
	ErrNewerFormat = fmt.Errorf("%w: the store was written in a newer format than this build reads: run a build that reads it", ErrFormat)
)

// CheckFormat reads the store's format marker and refuses a store of a
// format other than Format. A store without a marker (a new one, or one
// written before markers, which had this layout) is taken as Format, and
// with write the marker is written. A marker that cannot be read as one is
// refused: the root may not be a registry's store at all.
func CheckFormat(ctx context.Context, drv driver.Driver, write bool) error {
	b, err := drv.GetContent(ctx, formatPath)
	if driver.IsNotFound(err) {
		if !write {
			return nil
		}
		b, _ = json.Marshal(formatMarker{Format: Format})
		return drv.PutContent(ctx, formatPath, append(b, '\n'))
	} else if err != nil {
		return err
	}
	var m formatMarker
	if err := json.Unmarshal(b, &m); err != nil || m.Format < 1 {
		return fmt.Errorf("%w: %s is not a format marker of a Lading store (%.40q)", ErrFormat, formatPath, b)
	}
	if m.Format > Format {
		return fmt.Errorf("format %d, this build reads %d: %w", m.Format, Format, ErrNewerFormat)
	}
	if m.Format < Format {
		// No older format exists yet; one that does gets its migration here.
		return fmt.Errorf("%w: format %d, this build reads %d and cannot migrate it", ErrFormat, m.Format, Format)
	}
	return nil
}
