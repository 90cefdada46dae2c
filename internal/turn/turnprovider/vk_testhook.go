//go:build warren_testhooks

package turnprovider

import "os"

// Built only with -tags warren_testhooks (internal/e2e builds the
// binaries so): WARREN_TEST_VK_BASE_URL points the vk provider at a
// vkfake. Release builds have no such variable.
func init() {
	if base := os.Getenv("WARREN_TEST_VK_BASE_URL"); base != "" {
		SetVKBaseURLForTest(base)
	}
}
