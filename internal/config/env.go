package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

const envPrefix = "OPSCENTER_"

// applyEnv overrides leaves of c from OPSCENTER_SECTION_KEY variables, named after the
// yaml keys. An OPSCENTER_ variable that names no key is an error, like an unknown
// YAML key, so a typo in a unit file is caught at start.
func applyEnv(c *Config, env []string) error {
	leaves := map[string]reflect.Value{}
	collect(reflect.ValueOf(c).Elem(), envPrefix, leaves)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, envPrefix) {
			continue
		}
		f, known := leaves[k]
		if !known {
			return fmt.Errorf("environment variable %s names no config key", k)
		}
		if err := setFromString(f, v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func collect(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		name := prefix + strings.ToUpper(tag)
		if v.Field(i).Kind() == reflect.Struct {
			collect(v.Field(i), name+"_", out)
			continue
		}
		out[name] = v.Field(i)
	}
}

func setFromString(f reflect.Value, s string) error {
	if u, ok := f.Addr().Interface().(encoding.TextUnmarshaler); ok { // sizes such as 2GiB
		return u.UnmarshalText([]byte(s))
	}
	if f.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Slice:
		var items []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				items = append(items, p)
			}
		}
		f.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported kind %s", f.Kind())
	}
	return nil
}
