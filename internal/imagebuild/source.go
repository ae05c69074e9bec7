package imagebuild

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// SourceURL is where the source is published, by its module path.
const SourceURL = "https://github.com/lading-registry/lading"

// FromGit reads the metadata of the commit checked out at dir: the commit,
// with -dirty when tracked files differ from it (the image then is not
// that commit's); the nearest tag, or the commit's short name without one;
// and the commit's time, so two builds of it are dated alike.
func FromGit(ctx context.Context, dir string) (Metadata, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
			}
			return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	commit, err := git("rev-parse", "HEAD")
	if err != nil {
		return Metadata{}, err
	}
	version, err := git("describe", "--tags", "--always", "--dirty")
	if err != nil {
		return Metadata{}, err
	}
	if strings.HasSuffix(version, "-dirty") {
		commit += "-dirty"
	}
	when, err := git("log", "-1", "--format=%ct", "HEAD")
	if err != nil {
		return Metadata{}, err
	}
	secs, err := strconv.ParseInt(when, 10, 64)
	if err != nil {
		return Metadata{}, fmt.Errorf("commit time %q: %w", when, err)
	}
	return Metadata{Version: version, Commit: commit, Source: SourceURL, Created: time.Unix(secs, 0).UTC()}, nil
}
