package authtest

import (
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestAccessBasic and TestAccessToken run the same client scenarios, with
// go-containerregistry following the server's challenge: Basic credentials
// sent as they are, or exchanged at the built-in token server for a token
// scoped to each repository.
func TestAccessBasic(t *testing.T) { testAccess(t, basicMode) }
func TestAccessToken(t *testing.T) { testAccess(t, tokenMode) }

func testAccess(t *testing.T, m mode) {
	srv, _ := start(t, m)
	addr := srv.Addr
	seed := map[string]v1.Image{
		"public/base:1":  randomImage(t),
		"team/app:1":     randomImage(t),
		"secret/vault:1": randomImage(t),
	}
	for repoTag, img := range seed {
		mustPush(t, addr, repoTag, img, login("root"))
	}
	pull := func(repoTag string, who authn.Authenticator) error {
		_, err := remote.Image(ref(t, addr, repoTag), remote.WithAuth(who))
		if err == nil {
			// The manifest alone proves little: read a layer too.
			layers, _ := seed[repoTag].Layers()
			d, _ := layers[0].Digest()
			_, err = remote.Layer(ref(t, addr, repoTag).Context().Digest(d.String()), remote.WithAuth(who))
		}
		return err
	}

	t.Run("pull allowed", func(t *testing.T) {
		for _, c := range []struct{ user, repoTag string }{
			{"alice", "team/app:1"}, {"bob", "team/app:1"}, {"carol", "secret/vault:1"},
			{"root", "secret/vault:1"}, {"eve", "public/base:1"}, {"carol", "public/base:1"},
		} {
			if err := pull(c.repoTag, login(c.user)); err != nil {
				t.Errorf("%s pulling %s: %v", c.user, c.repoTag, err)
			}
		}
	})
	t.Run("pull denied", func(t *testing.T) {
		for _, c := range []struct{ user, repoTag string }{
			{"bob", "secret/vault:1"}, {"eve", "team/app:1"}, {"carol", "team/app:1"},
		} {
			wantRefused(t, pull(c.repoTag, login(c.user)), http.StatusForbidden, "DENIED")
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		err := pull("team/app:1", &authn.Basic{Username: "alice", Password: "not-her-password"})
		wantRefused(t, err, http.StatusUnauthorized, "UNAUTHORIZED")
	})
	t.Run("push allowed", func(t *testing.T) {
		img := randomImage(t)
		mustPush(t, addr, "team/app:2", img, login("bob"))
		got, err := remote.Image(ref(t, addr, "team/app:2"), remote.WithAuth(login("alice")))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := img.Digest()
		if d, _ := got.Digest(); d != want {
			t.Fatalf("pulled %s, pushed %s", d, want)
		}
	})
	t.Run("push denied", func(t *testing.T) {
		for _, c := range []struct{ user, repoTag string }{
			{"carol", "secret/vault:2"}, {"bob", "public/base:2"}, {"eve", "team/app:3"},
		} {
			err := remote.Write(ref(t, addr, c.repoTag), randomImage(t), remote.WithAuth(login(c.user)))
			wantRefused(t, err, http.StatusForbidden, "DENIED")
		}
	})
	t.Run("delete", func(t *testing.T) {
		img := randomImage(t)
		mustPush(t, addr, "team/app:doomed", img, login("bob"))
		d, _ := img.Digest()
		byDigest := ref(t, addr, "team/app@"+d.String())
		wantRefused(t, remote.Delete(byDigest, remote.WithAuth(login("bob"))), http.StatusForbidden, "DENIED")
		wantRefused(t, remote.Delete(byDigest, remote.WithAuth(login("carol"))), http.StatusForbidden, "DENIED")
		if err := remote.Delete(byDigest, remote.WithAuth(login("alice"))); err != nil {
			t.Fatalf("alice deleting: %v", err)
		}
		_, err := remote.Head(byDigest, remote.WithAuth(login("alice")))
		wantRefused(t, err, http.StatusNotFound, "")
	})
	t.Run("anonymous", func(t *testing.T) {
		if err := pull("public/base:1", authn.Anonymous); err != nil {
			t.Fatalf("anonymous pull of a public repository: %v", err)
		}
		wantRefused(t, pull("team/app:1", authn.Anonymous), http.StatusUnauthorized, "UNAUTHORIZED")
		err := remote.Write(ref(t, addr, "public/base:anon"), randomImage(t))
		wantRefused(t, err, http.StatusUnauthorized, "UNAUTHORIZED")
	})
	t.Run("catalog", func(t *testing.T) {
		for who, want := range map[string][]string{
			"root":  {"public/base", "secret/vault", "team/app"},
			"alice": {"public/base", "team/app"},
			"carol": {"public/base", "secret/vault"},
			"eve":   {"public/base"},
			"":      {"public/base"},
		} {
			var a authn.Authenticator = authn.Anonymous
			if who != "" {
				a = login(who)
			}
			reg, _ := name.NewRegistry(addr)
			got, err := remote.Catalog(t.Context(), reg, remote.WithAuth(a))
			if err != nil {
				t.Errorf("catalog as %q: %v", who, err)
				continue
			}
			if slices.Sort(got); !slices.Equal(got, want) {
				t.Errorf("catalog as %q: %v, want %v", who, got, want)
			}
		}
	})
	t.Run("mount", func(t *testing.T) { testMount(t, m, srv.URL, seed) })
	t.Run("challenges", func(t *testing.T) { testChallenges(t, m, srv.URL) })
	t.Run("secrets stay out of the log", func(t *testing.T) { testSecretsNotLogged(t, m, addr, srv.Logs) })
}
