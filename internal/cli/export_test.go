package cli

import "reflect"

func reflectTypeOfTestConfig() reflect.Type { return reflect.TypeOf(testConfig{}) }
