package secret

import (
	"fmt"
	"strings"
)

// FromFile reads the secret in the file at path with read. A trailing
// newline (\n or \r\n, as editors and `echo` leave) is trimmed; an empty
// secret is an error.
func FromFile(read func(path string) ([]byte, error), path string) (string, error) {
	b, err := read(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("file %s is empty", path)
	}
	return v, nil
}

// FromEnv reads the secret in the environment variable name with lookup;
// unset and empty are both errors.
func FromEnv(lookup func(name string) (string, bool), name string) (string, error) {
	v, ok := lookup(name)
	if !ok || v == "" {
		return "", fmt.Errorf("environment variable %s is not set or empty", name)
	}
	return v, nil
}
