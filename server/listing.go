package server

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/lading-registry/lading/registry"
)

// Page sizes for listings. A page's memory (and on an object store its
// time) grows with its size, so no page is unbounded: a request without
// n, or with a larger one, gets at most these many entries and a Link to
// the rest. Tags come
// in big pages, since clients that ignore Link are common and repositories
// with more tags than maxPage are not.
const (
	defaultCatalogPage = 1000
	maxPage            = 10000
)

// pageRequest is a listing's ?n= and ?last=.
type pageRequest struct {
	n    int  // entries wanted, at most maxPage
	none bool // n=0: the spec's way to ask for an empty page
	last string
}

// parsePage reads n and last; defaultN applies when n is absent.
func parsePage(q url.Values, defaultN int) (pageRequest, error) {
	p := pageRequest{n: defaultN, last: q.Get("last")}
	if s := q.Get("n"); s != "" {
		n, ok := parseDecimal(s)
		if !ok {
			return p, withStatus(http.StatusBadRequest, registry.CodeUnsupported, "invalid page size n=%q", s)
		}
		p.n = int(min(n, maxPage))
		p.none = n == 0
	}
	return p, nil
}

// setNextLink adds the RFC 8288 Link to the page after last; q holds any
// other parameters the next page keeps.
func setNextLink(w http.ResponseWriter, path string, n int, last string, q url.Values) {
	if q == nil {
		q = url.Values{}
	}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	q.Set("last", last)
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

func (h *handlers) tags(w http.ResponseWriter, r *http.Request, rt Route) error {
	page, err := parsePage(r.URL.Query(), maxPage)
	if err != nil {
		return err
	}
	if page.last != "" {
		if err := registry.ValidateTag(page.last); err != nil {
			return err
		}
	}
	if h.opts.Mirror != nil {
		if handled, err := h.mirrorTags(w, r, rt, page); handled || err != nil {
			return err
		}
	}
	repo, err := h.repository(rt)
	if err != nil {
		return err
	}
	list := tagList{Name: rt.Repository, Tags: []string{}}
	if page.none {
		// An empty page still tells a repository that is not there; a
		// page of one costs a look at one tag.
		if _, _, err := repo.Manifests().Tags(r.Context(), "", 1); err != nil {
			return err
		}
	} else {
		tags, more, err := repo.Manifests().Tags(r.Context(), page.last, page.n)
		if err != nil {
			return err
		}
		if tags != nil {
			list.Tags = tags
		}
		if more && len(tags) > 0 {
			setNextLink(w, "/v2/"+rt.Repository+"/tags/list", page.n, tags[len(tags)-1], nil)
		}
	}
	writeJSON(w, r, http.StatusOK, list)
	return nil
}

type catalogList struct {
	Repositories []string `json:"repositories"`
}

func (h *handlers) catalog(w http.ResponseWriter, r *http.Request, _ Route) error {
	page, err := parsePage(r.URL.Query(), defaultCatalogPage)
	if err != nil {
		return err
	}
	if page.last != "" {
		if err := registry.ValidateName(page.last); err != nil {
			return err
		}
	}
	list := catalogList{Repositories: []string{}}
	if !page.none && !h.pullsNothing(r) {
		// Only names the caller may pull are shown or lead on: the page is
		// read until it holds one more of them than it shows (or the
		// catalog ends), and the next one starts after the last it shows,
		// so neither the Link nor its presence tells of a hidden name.
		//
		// The names are filtered in batches of at least 100 as one listing
		// goes on: a caller who may see few of them costs one reading of
		// the catalog, not one per batch.
		var names []string
		batch := make([]string, 0, max(page.n+1, 100))
		filled := func() bool {
			names = append(names, h.visible(r, batch)...)
			batch = batch[:0]
			return len(names) > page.n
		}
		err := h.reg.WalkCatalog(r.Context(), page.last, func(name string) bool {
			batch = append(batch, name)
			return len(batch) < cap(batch) || !filled()
		})
		if err != nil {
			return err
		}
		filled()
		if len(names) > page.n {
			names = names[:page.n]
			setNextLink(w, "/v2/_catalog", page.n, names[len(names)-1], nil)
		}
		if names != nil {
			list.Repositories = names
		}
	}
	writeJSON(w, r, http.StatusOK, list)
	return nil
}
