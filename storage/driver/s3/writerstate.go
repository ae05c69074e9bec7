package s3

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// A writer's state lives in the bucket, in its directory of the hidden
// tree ("<prefix>/~writers/<path>/"), so that any process can continue it:
//
//	~upload.<id>            the multipart upload, once one is started (its
//	                        id in base64url; in the content of "~upload"
//	                        if the name would be too long a key)
//	~part.<n>.<end>         marker: parts 1..n are uploaded and hold bytes
//	                        [0, end); its content is their ETags, a line
//	                        each (empty when written before they were
//	                        recorded); only the latest marker is kept
//	~piece.<offset>         bytes from offset on that are not in a part yet
//
// The multipart upload targets the path's own key, so Commit completes it
// in place and nothing is visible at the path before then.
//
// Markers and pieces are each written once (If-None-Match), and Commit
// completes the upload with the recorded ETags: bytes a writer whose lease
// lapsed puts beside the session's are refused (driver.ErrWriterConflict),
// never taken for the session's own.
//
// A Close with less than a part's worth pending stores what it has as one
// more piece. Once the pieces and new bytes reach MinPartSize they are
// joined into the next part and the pieces deleted, so every byte is written
// at most three times (piece, read back, part) whatever the number of
// writes. As the object grows, parts made this way grow too (up to the part
// size), so small writes do not run into S3's limit of 10,000 parts before
// the object reaches about 120 GiB.
//
// Every step is ordered so that a crash between any two requests leaves a
// state the next writer reads correctly: a part is uploaded before its
// marker is written (once, when the writer closes), and the marker before
// the pieces it absorbed are deleted; pieces below the latest marker's end
// are recognised as absorbed, parts beyond it are ignored and overwritten.
// Listing the directory (one request) is all it takes to reopen a writer.
const (
	uploadEntry = "~upload"
	partEntry   = "~part."
	pieceEntry  = "~piece."
	// maxKeyLength is S3's limit on a key, in bytes.
	maxKeyLength = 1024
)

// writersPrefix is the directory of the writer for path, which also holds
// the directories of writers below path.
func (d *Driver) writersPrefix(path string) string { return d.hiddenPrefix() + path[1:] + "/" }

type piece struct {
	key          string
	offset, size int64
}

// load reads a writer's state from its directory listing.
func (w *writer) load(entries []types.Object) error {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%s: writer state of %s is inconsistent: %s", name, w.path, fmt.Sprintf(format, args...))
	}
	var pieces []piece
	for _, o := range entries {
		key := aws.ToString(o.Key)
		entry := key[len(w.dir):]
		switch {
		case strings.HasPrefix(entry, uploadEntry):
			if !w.noteUpload(key) {
				return corrupt("bad entry %q", entry)
			}
		case strings.HasPrefix(entry, partEntry):
			n, end, ok := parsePartEntry(entry)
			if !ok {
				return corrupt("bad entry %q", entry)
			}
			if n > w.parts {
				if w.partMarker != "" {
					w.stale = append(w.stale, w.partMarker)
				}
				w.parts, w.partsEnd, w.partMarker, w.markerParts = n, end, key, n
			} else {
				w.stale = append(w.stale, key)
			}
		case strings.HasPrefix(entry, pieceEntry):
			off, err := strconv.ParseInt(entry[len(pieceEntry):], 10, 64)
			if err != nil {
				return corrupt("bad entry %q", entry)
			}
			pieces = append(pieces, piece{key: key, offset: off, size: aws.ToInt64(o.Size)})
		default:
			return corrupt("unknown entry %q", entry)
		}
	}
	slices.SortFunc(pieces, func(a, b piece) int { return int(a.offset - b.offset) })
	end := w.partsEnd
	for _, p := range pieces {
		switch {
		case p.offset < w.partsEnd:
			w.stale = append(w.stale, p.key) // absorbed by a part
		case p.offset != end:
			return corrupt("piece at %d, expected %d", p.offset, end)
		default:
			w.pieces = append(w.pieces, p)
			end += p.size
		}
	}
	if w.parts > 0 && w.uploadKey == "" {
		return corrupt("parts without an upload")
	}
	w.pending = end - w.partsEnd
	w.size = end
	w.persisted = true
	return nil
}

// noteUpload records key if it is the ~upload entry, and the upload id if
// its name holds it.
func (w *writer) noteUpload(key string) bool {
	entry := key[len(w.dir):]
	if entry == uploadEntry {
		w.uploadKey = key
		return true
	}
	encoded, ok := strings.CutPrefix(entry, uploadEntry+".")
	if !ok {
		return false
	}
	id, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil || len(id) == 0 {
		return false
	}
	w.uploadKey, w.uploadID = key, string(id)
	return true
}

func parsePartEntry(entry string) (n int32, end int64, ok bool) {
	num, endStr, ok := strings.Cut(entry[len(partEntry):], ".")
	if !ok {
		return 0, 0, false
	}
	n64, err1 := strconv.ParseInt(num, 10, 32)
	end, err2 := strconv.ParseInt(endStr, 10, 64)
	return int32(n64), end, err1 == nil && err2 == nil && n64 > 0
}

func partEntryName(n int32, end int64) string { return fmt.Sprintf("%s%05d.%020d", partEntry, n, end) }

func pieceEntryName(offset int64) string { return fmt.Sprintf("%s%020d", pieceEntry, offset) }
