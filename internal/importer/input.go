package importer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Limits bound what one import may read and build, so that no input (a
// fuzzer's, or an include loop) can take unbounded time or memory.
const (
	maxFileSize     = 1 << 20 // bytes per file
	maxTotalSize    = 8 << 20 // bytes over all files and includes
	maxFiles        = 256     // files read, includes counted
	maxIncludeDepth = 8       // include inside include inside ...
	maxGlobMatches  = 64      // files one include may name
	maxNesting      = 16      // { inside { in keepalived.conf
	maxTokens       = 1 << 18 // words over all keepalived files
	maxWords        = 1024    // words on one line
	maxLines        = 1 << 17 // lines of one haproxy.cfg
)

// fileSystem is what the parsers read. The CLI reads the host's files; the
// fuzzers and some tests give an in-memory one.
type fileSystem interface {
	// ReadFile reads at most limit bytes and fails if the file is longer.
	ReadFile(name string, limit int64) ([]byte, error)
	// Glob lists the files matching pattern, sorted.
	Glob(pattern string) ([]string, error)
}

var errTooLarge = errors.New("file too large")

// osFS reads the host's files.
type osFS struct{}

func (osFS) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

func (osFS) Glob(pattern string) ([]string, error) {
	m, err := filepath.Glob(pattern)
	sort.Strings(m)
	return m, err
}

// mapFS is an in-memory fileSystem for tests and fuzzers.
type mapFS map[string][]byte

func (m mapFS) ReadFile(name string, limit int64) ([]byte, error) {
	data, ok := m[filepath.Clean(name)]
	if !ok {
		return nil, os.ErrNotExist
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

func (m mapFS) Glob(pattern string) ([]string, error) {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return nil, err
	}
	var out []string
	for name := range m {
		if ok, _ := filepath.Match(pattern, name); ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// budget counts what the parsers have read against the limits.
type budget struct {
	files  int
	bytes  int64
	tokens int
}

// read reads one file within the budget; a failure is reported at from.
func (b *budget) read(fs fileSystem, r *report, from Pos, name string) ([]byte, bool) {
	if b.files >= maxFiles {
		r.errorf(from, "more than %d files read (includes counted); vipd import stops here", maxFiles)
		return nil, false
	}
	b.files++
	left := int64(maxTotalSize) - b.bytes
	limit := min(int64(maxFileSize), left)
	data, err := fs.ReadFile(name, limit)
	switch {
	case errors.Is(err, errTooLarge) && limit < maxFileSize:
		r.errorf(from, "%s: the files read add up to more than %d MiB; vipd import stops here", name, maxTotalSize>>20)
		return nil, false
	case errors.Is(err, errTooLarge):
		r.errorf(from, "%s: larger than %d MiB; is this a configuration file?", name, maxFileSize>>20)
		return nil, false
	case err != nil:
		r.errorf(from, "cannot read %s: %v", name, unwrapPathError(err))
		return nil, false
	}
	b.bytes += int64(len(data))
	r.file(name)
	return data, true
}

// unwrapPathError drops the path that *fs.PathError repeats.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
