// Command tlog-interop checks Ferry's transparency log against an independent implementation of the same formats:
// golang.org/x/mod/sumdb/note (signed notes, keys) and golang.org/x/mod/sumdb/tlog (RFC 6962 hashing, tiles,
// proofs), as Debian ships them in golang-golang-x-mod-dev. Ferry's tests (Tests/FerryLogTests) build and run it;
// it needs no network:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$(mktemp -d) go build -o tlog-interop ./scripts/tlog-interop
//
// Go's tlog names tiles tile/8/<L>/<N> and entry data tile/8/data/<N>; c2sp.org/tlog-tiles, which Ferry follows,
// drops the height: tile/<L>/<N> and tile/entries/<N> (with length-prefixed entry bundles, which this program
// encodes and decodes itself). Everything else (hashes, tile contents, proofs) is the same RFC 6962 tree.
//
// Subcommands (exit 0 when everything checks, 1 with a message otherwise):
//
//	keygen NAME PREFIX                   PREFIX.key, PREFIX.vkey with note.GenerateKey (Ed25519, type 0x01)
//	witness-keygen NAME PREFIX           a cosignature/v1 (type 0x04) key pair
//	sign KEYFILE TEXTFILE                a note signed with note.Sign, on stdout
//	cosign KEYFILE NOTEFILE TIME         the note with a cosignature/v1 line added, on stdout
//	verify-note NOTEFILE VKEYFILE...     note.Open; prints "verified NAME [time T]" per verified signature
//	check-log VKEYFILE LOGDIR [PROOFS]   a Ferry log: checkpoint, every entry, every tile, Go's and Ferry's proofs
//	write-log KEYFILE LOGDIR ENTRY...    a c2sp tiled log of the ENTRY files, for Ferry to verify
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	tileHeight     = 8
	algEd25519     = 0x01
	algCosignature = 0x04
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: tlog-interop keygen|witness-keygen|sign|cosign|verify-note|check-log|write-log ..."))
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "keygen":
		err = keygen(args)
	case "witness-keygen":
		err = witnessKeygen(args)
	case "sign":
		err = sign(args)
	case "cosign":
		err = cosign(args)
	case "verify-note":
		err = verifyNote(args)
	case "check-log":
		err = checkLog(args)
	case "write-log":
		err = writeLog(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tlog-interop:", err)
	os.Exit(1)
}

func readLine(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

func keyHash(name string, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func writeKeys(prefix, skey, vkey string) error {
	if err := os.WriteFile(prefix+".key", []byte(skey+"\n"), 0o600); err != nil {
		return err
	}
	return os.WriteFile(prefix+".vkey", []byte(vkey+"\n"), 0o644)
}

func keygen(args []string) error {
	if len(args) != 2 {
		return errors.New("keygen NAME PREFIX")
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, args[0])
	if err != nil {
		return err
	}
	return writeKeys(args[1], skey, vkey)
}

// witnessKeygen writes a type 0x04 key pair in the same string formats; x/mod's note only generates type 0x01.
func witnessKeygen(args []string) error {
	if len(args) != 2 {
		return errors.New("witness-keygen NAME PREFIX")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	name := args[0]
	pubkey := append([]byte{algCosignature}, pub...)
	h := keyHash(name, pubkey)
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, h,
		base64.StdEncoding.EncodeToString(append([]byte{algCosignature}, priv.Seed()...)))
	vkey := fmt.Sprintf("%s+%08x+%s", name, h, base64.StdEncoding.EncodeToString(pubkey))
	return writeKeys(args[1], skey, vkey)
}

func sign(args []string) error {
	if len(args) != 2 {
		return errors.New("sign KEYFILE TEXTFILE")
	}
	skey, err := readLine(args[0])
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	text, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(msg)
	return err
}

// cosignedMessage is what a cosignature/v1 signs (c2sp.org/tlog-cosignature).
func cosignedMessage(text []byte, t uint64) []byte {
	return append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), text...)
}

// cosign adds a cosignature/v1 line by the witness key to a note, written from the spec without Ferry's code.
func cosign(args []string) error {
	if len(args) != 3 {
		return errors.New("cosign KEYFILE NOTEFILE TIME")
	}
	skey, err := readLine(args[0])
	if err != nil {
		return err
	}
	fields := strings.SplitN(skey, "+", 5)
	if len(fields) != 5 || fields[0] != "PRIVATE" || fields[1] != "KEY" {
		return errors.New("not a signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(fields[4])
	if err != nil || len(raw) != 33 || raw[0] != algCosignature {
		return errors.New("not a cosignature/v1 key")
	}
	priv := ed25519.NewKeyFromSeed(raw[1:])
	name := fields[2]
	hash := keyHash(name, append([]byte{algCosignature}, priv.Public().(ed25519.PublicKey)...))
	msg, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		return errors.New("malformed note")
	}
	t, err := strconv.ParseUint(args[2], 10, 63)
	if err != nil {
		return err
	}
	sig := make([]byte, 12, 12+ed25519.SignatureSize)
	binary.BigEndian.PutUint32(sig[0:4], hash)
	binary.BigEndian.PutUint64(sig[4:12], t)
	sig = append(sig, ed25519.Sign(priv, cosignedMessage(msg[:split+1], t))...)
	line := fmt.Sprintf("— %s %s\n", name, base64.StdEncoding.EncodeToString(sig))
	_, err = os.Stdout.Write(append(msg, line...))
	return err
}

// cosigVerifier is a note.Verifier for type 0x04 keys, which x/mod's note.NewVerifier does not know.
type cosigVerifier struct {
	name  string
	hash  uint32
	key   ed25519.PublicKey
	times map[string]uint64
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	if t > 1<<63-1 || !ed25519.Verify(v.key, cosignedMessage(msg, t), sig[8:]) {
		return false
	}
	v.times[v.name] = t
	return true
}

func newVerifier(vkey string, times map[string]uint64) (note.Verifier, error) {
	fields := strings.SplitN(vkey, "+", 3)
	if len(fields) == 3 {
		raw, err := base64.StdEncoding.DecodeString(fields[2])
		if err == nil && len(raw) == 33 && raw[0] == algCosignature {
			hash, err := strconv.ParseUint(fields[1], 16, 32)
			if err != nil || uint32(hash) != keyHash(fields[0], raw) {
				return nil, errors.New("bad cosignature key hash")
			}
			return &cosigVerifier{name: fields[0], hash: uint32(hash), key: raw[1:], times: times}, nil
		}
	}
	return note.NewVerifier(vkey)
}

func verifyNote(args []string) error {
	if len(args) < 2 {
		return errors.New("verify-note NOTEFILE VKEYFILE...")
	}
	msg, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	times := map[string]uint64{}
	var verifiers []note.Verifier
	for _, path := range args[1:] {
		vkey, err := readLine(path)
		if err != nil {
			return err
		}
		v, err := newVerifier(vkey, times)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		verifiers = append(verifiers, v)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return err
	}
	for _, s := range n.Sigs {
		if t, ok := times[s.Name]; ok {
			fmt.Printf("verified %s time %d\n", s.Name, t)
		} else {
			fmt.Printf("verified %s\n", s.Name)
		}
	}
	return nil
}

// c2spPath maps x/mod's tile path (tile/8/L/N, tile/8/data/N) to c2sp.org/tlog-tiles (tile/L/N, tile/entries/N).
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", tileHeight))
	if strings.HasPrefix(p, "data/") {
		return "tile/entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func openCheckpoint(path string, verifier note.Verifier) (checkpoint, error) {
	var c checkpoint
	msg, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return c, fmt.Errorf("checkpoint: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return c, errors.New("checkpoint: fewer than three lines")
	}
	c.origin = lines[0]
	if c.origin != verifier.Name() {
		return c, fmt.Errorf("checkpoint origin %q is not the key name %q", c.origin, verifier.Name())
	}
	c.size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || c.size < 0 || strconv.FormatInt(c.size, 10) != lines[1] {
		return c, fmt.Errorf("checkpoint size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return c, fmt.Errorf("checkpoint root %q", lines[2])
	}
	copy(c.root[:], root)
	return c, nil
}

// treeTiles lists the tiles a c2sp log of the given size has: the full ones and the partial tile of each level at
// that size. tlog.NewTiles lists the partial tiles of every size up to it, which the sumdb serves and c2sp does not.
func treeTiles(size int64) []tlog.Tile {
	var tiles []tlog.Tile
	for _, t := range tlog.NewTiles(tileHeight, 0, size) {
		if t.W == 1<<tileHeight || int64(t.W) == size>>(tileHeight*t.L)-t.N<<tileHeight {
			tiles = append(tiles, t)
		}
	}
	return tiles
}

// readBundle decodes a c2sp entry bundle of exactly w entries.
func readBundle(path string, w int) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("%s: truncated length", path)
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, fmt.Errorf("%s: truncated entry", path)
		}
		entries = append(entries, data[2:2+n])
		data = data[2+n:]
	}
	if len(entries) != w {
		return nil, fmt.Errorf("%s: %d entries, want %d", path, len(entries), w)
	}
	return entries, nil
}

type storage []tlog.Hash

func (s *storage) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*s)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = (*s)[x]
	}
	return out, nil
}

// fileTiles reads c2sp tiles from a directory for tlog.TileHashReader, which authenticates each against the tree.
// x/mod's reader asks for partial tiles of any width (the sumdb serves them all); a c2sp log has only the widths of
// its checkpoints, so a narrower tile is read as the prefix of the one the tree of the checkpoint's size has.
type fileTiles struct {
	dir  string
	size int64
}

func (f fileTiles) Height() int { return tileHeight }
func (f fileTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		stored := t
		stored.W = 1 << tileHeight
		if rest := f.size>>(tileHeight*t.L) - t.N<<tileHeight; rest < 1<<tileHeight {
			stored.W = int(rest)
		}
		if stored.W < t.W {
			return nil, fmt.Errorf("%s is beyond the tree of size %d", t.Path(), f.size)
		}
		data, err := os.ReadFile(filepath.Join(f.dir, c2spPath(stored)))
		if err != nil {
			return nil, err
		}
		if len(data) != stored.W*tlog.HashSize {
			return nil, fmt.Errorf("%s: %d bytes", c2spPath(stored), len(data))
		}
		out[i] = data[:t.W*tlog.HashSize]
	}
	return out, nil
}
func (f fileTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func parseHashes(s string) ([]tlog.Hash, error) {
	if s == "-" {
		return nil, nil
	}
	var out []tlog.Hash
	for _, b := range strings.Split(s, ",") {
		h, err := tlog.ParseHash(b)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func checkLog(args []string) error {
	if len(args) != 2 && len(args) != 3 {
		return errors.New("check-log VKEYFILE LOGDIR [PROOFS]")
	}
	vkey, err := readLine(args[0])
	if err != nil {
		return err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	dir := args[1]
	c, err := openCheckpoint(filepath.Join(dir, "checkpoint"), verifier)
	if err != nil {
		return err
	}

	// Every entry, from its bundle, into Go's own stored hashes.
	var stored storage
	var leaves []tlog.Hash
	for n := int64(0); n < c.size; n += 1 << tileHeight {
		w := c.size - n
		if w > 1<<tileHeight {
			w = 1 << tileHeight
		}
		t := tlog.Tile{H: tileHeight, L: -1, N: n >> tileHeight, W: int(w)}
		entries, err := readBundle(filepath.Join(dir, c2spPath(t)), int(w))
		if err != nil {
			return err
		}
		for _, e := range entries {
			hashes, err := tlog.StoredHashes(int64(len(leaves)), e, &stored)
			if err != nil {
				return err
			}
			stored = append(stored, hashes...)
			leaves = append(leaves, tlog.RecordHash(e))
		}
	}
	root, err := tlog.TreeHash(c.size, &stored)
	if err != nil {
		return err
	}
	if root != c.root {
		return fmt.Errorf("entries hash to %v, checkpoint says %v", root, c.root)
	}

	// Every tile of the tree, byte for byte as Go computes it.
	tiles := treeTiles(c.size)
	for _, t := range tiles {
		want, err := tlog.ReadTileData(t, &stored)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join(dir, c2spPath(t)))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s differs from Go's tile %s", c2spPath(t), t.Path())
		}
	}

	// Proofs from Ferry's tiles through Go's authenticating tile reader, checked by Go: every record of a small
	// log, about 4096 spread over a large one (and its last).
	tree := tlog.Tree{N: c.size, Hash: c.root}
	fromTiles := tlog.TileHashReader(tree, fileTiles{dir, c.size})
	step := c.size/4096 + 1
	for i := int64(0); i < c.size; i += step {
		if i+step >= c.size {
			i = c.size - 1
		}
		p, err := tlog.ProveRecord(c.size, i, fromTiles)
		if err != nil {
			return fmt.Errorf("proof of %d from tiles: %v", i, err)
		}
		if err := tlog.CheckRecord(p, c.size, c.root, i, leaves[i]); err != nil {
			return fmt.Errorf("record %d: %v", i, err)
		}
	}
	checked := 0
	if len(args) == 3 {
		checked, err = checkProofs(args[2], &stored, leaves)
		if err != nil {
			return err
		}
	}
	fmt.Printf("ok %s size %d: %d tiles, %d Ferry proofs\n", c.origin, c.size, len(tiles), checked)
	return nil
}

// checkProofs checks proofs Ferry computed from its tiles, one a line:
//
//	inclusion INDEX SIZE ROOT H,H,...       (ROOT and H in base64; "-" for no hashes)
//	consistency OLD NEW OLDROOT NEWROOT H,H,...
//
// Each root must be the one Go computes from the entries, each proof must pass CheckRecord or CheckTree, and
// each must equal the proof Go makes itself.
func checkProofs(path string, stored *storage, leaves []tlog.Hash) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	count := 0
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		rootAt := func(field string, size int64) (tlog.Hash, error) {
			h, err := tlog.ParseHash(field)
			if err != nil {
				return h, err
			}
			mine, err := tlog.TreeHash(size, stored)
			if err != nil {
				return h, err
			}
			if mine != h {
				return h, fmt.Errorf("root of size %d: Ferry says %v, Go computes %v", size, h, mine)
			}
			return h, nil
		}
		switch {
		case len(fields) == 5 && fields[0] == "inclusion":
			index, err1 := strconv.ParseInt(fields[1], 10, 64)
			size, err2 := strconv.ParseInt(fields[2], 10, 64)
			if err1 != nil || err2 != nil || index < 0 || index >= size || size > int64(len(leaves)) {
				return count, fmt.Errorf("bad line %q", scanner.Text())
			}
			root, err := rootAt(fields[3], size)
			if err != nil {
				return count, err
			}
			proof, err := parseHashes(fields[4])
			if err != nil {
				return count, err
			}
			if err := tlog.CheckRecord(proof, size, root, index, leaves[index]); err != nil {
				return count, fmt.Errorf("inclusion %d in %d: %v", index, size, err)
			}
			mine, err := tlog.ProveRecord(size, index, stored)
			if err != nil || !equalProofs(mine, proof) {
				return count, fmt.Errorf("inclusion %d in %d: differs from Go's proof", index, size)
			}
		case len(fields) == 6 && fields[0] == "consistency":
			old, err1 := strconv.ParseInt(fields[1], 10, 64)
			size, err2 := strconv.ParseInt(fields[2], 10, 64)
			if err1 != nil || err2 != nil || old < 1 || old > size || size > int64(len(leaves)) {
				return count, fmt.Errorf("bad line %q", scanner.Text())
			}
			oldRoot, err := rootAt(fields[3], old)
			if err != nil {
				return count, err
			}
			newRoot, err := rootAt(fields[4], size)
			if err != nil {
				return count, err
			}
			proof, err := parseHashes(fields[5])
			if err != nil {
				return count, err
			}
			if err := tlog.CheckTree(proof, size, newRoot, old, oldRoot); err != nil {
				return count, fmt.Errorf("consistency %d to %d: %v", old, size, err)
			}
			mine, err := tlog.ProveTree(size, old, stored)
			if err != nil || !equalProofs(mine, proof) {
				return count, fmt.Errorf("consistency %d to %d: differs from Go's proof", old, size)
			}
		default:
			return count, fmt.Errorf("bad line %q", scanner.Text())
		}
		count++
	}
	return count, scanner.Err()
}

func equalProofs(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// writeLog writes a c2sp tiled log of the given entry files: bundles, every tile tlog says the tree has, and a
// checkpoint signed with note.Sign.
func writeLog(args []string) error {
	if len(args) < 2 {
		return errors.New("write-log KEYFILE LOGDIR ENTRY...")
	}
	skey, err := readLine(args[0])
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	dir := args[1]
	var entries [][]byte
	for _, path := range args[2:] {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		entries = append(entries, data)
	}
	var stored storage
	for i, e := range entries {
		hashes, err := tlog.StoredHashes(int64(i), e, &stored)
		if err != nil {
			return err
		}
		stored = append(stored, hashes...)
	}
	size := int64(len(entries))
	write := func(rel string, data []byte) error {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, data, 0o644)
	}
	for n := int64(0); n < size; n += 1 << tileHeight {
		end := n + 1<<tileHeight
		if end > size {
			end = size
		}
		var bundle []byte
		for _, e := range entries[n:end] {
			bundle = binary.BigEndian.AppendUint16(bundle, uint16(len(e)))
			bundle = append(bundle, e...)
		}
		t := tlog.Tile{H: tileHeight, L: -1, N: n >> tileHeight, W: int(end - n)}
		if err := write(c2spPath(t), bundle); err != nil {
			return err
		}
	}
	for _, t := range treeTiles(size) {
		data, err := tlog.ReadTileData(t, &stored)
		if err != nil {
			return err
		}
		if err := write(c2spPath(t), data); err != nil {
			return err
		}
	}
	root, err := tlog.TreeHash(size, &stored)
	if err != nil {
		return err
	}
	text := fmt.Sprintf("%s\n%d\n%s\n", signer.Name(), size, base64.StdEncoding.EncodeToString(root[:]))
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return err
	}
	return write("checkpoint", msg)
}
