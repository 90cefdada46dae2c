package cli

import (
	"reflect"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// decoderOptions makes viper.Unmarshal read the config structs' yaml tags
// (",inline" embeds a struct) and decode every leaf with decodeHook. Fresh
// slices and maps are made so a loaded config never shares storage with
// the defaults.
func decoderOptions(dc *mapstructure.DecoderConfig) {
	dc.TagName = "yaml"
	dc.SquashTagOption = "inline"
	dc.ZeroFields = true
	dc.WeaklyTypedInput = false
	dc.DecodeHook = mapstructure.DecodeHookFuncValue(decodeHook)
}

var _ viper.DecoderConfigOption = decoderOptions

// decodeHook decodes one leaf value with convert, the strict conversion
// every source shares; sections (plain structs) are left to mapstructure,
// which walks them.
func decodeHook(from, to reflect.Value) (any, error) {
	if !from.IsValid() {
		return nil, nil
	}
	if to.Kind() == reflect.Struct && !isLeaf(to.Type()) {
		return from.Interface(), nil
	}
	v, err := convert(from.Interface(), to.Type())
	if err != nil {
		return nil, err
	}
	return v.Interface(), nil
}
