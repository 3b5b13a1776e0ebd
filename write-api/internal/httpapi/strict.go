package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"notify/pkg/problem"
)

// decodeStrict decodes a request body into dst, a pointer to a request
// struct, more strictly than encoding/json does: in the request's own
// objects every member name must be a field's JSON name exactly (case
// included), known and not repeated; free-form values (data) are taken as
// they are; the body must be valid UTF-8 (encoding/json would silently
// replace bad bytes) and hold exactly one JSON object.
func decodeStrict(body []byte, dst any) error {
	if !utf8.Valid(body) {
		return problem.New(problem.Invalid, "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	v := reflect.ValueOf(dst).Elem()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return problem.New(problem.Invalid, "malformed JSON: the body must be a JSON object")
	}
	if err := decodeMembers(dec, v, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return problem.New(problem.Invalid, "malformed JSON: trailing data after the object")
	}
	return nil
}

// decodeValue decodes the next value into v: request objects and arrays
// of them member by member, anything else with encoding/json.
func decodeValue(dec *json.Decoder, v reflect.Value, path string) error {
	switch {
	case v.Kind() == reflect.Struct:
		if null, err := opening(dec, path, '{', "object"); null || err != nil {
			return err
		}
		return decodeMembers(dec, v, path)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		return decodeArray(dec, v, path)
	}
	if err := dec.Decode(v.Addr().Interface()); err != nil {
		return malformed(path, err)
	}
	return nil
}

// decodeMembers reads an object's members up to its closing brace.
func decodeMembers(dec *json.Decoder, v reflect.Value, path string) error {
	fields := fieldsOf(v.Type())
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return malformed(path, err)
		}
		name, _ := tok.(string)
		at := join(path, name)
		i, ok := fields[name]
		switch {
		case !ok:
			for known := range fields {
				if strings.EqualFold(known, name) {
					return problem.New(problem.Invalid, "%s: unknown member (member names are case-sensitive: %q)", at, join(path, known))
				}
			}
			return problem.New(problem.Invalid, "%s: unknown member", at)
		case seen[name]:
			return problem.New(problem.Invalid, "%s: duplicated member", at)
		}
		seen[name] = true
		if err := decodeValue(dec, v.Field(i), at); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return malformed(path, err)
	}
	return nil
}

// decodeArray reads an array of request objects into v (null leaves it
// nil); a problem in an item names its index.
func decodeArray(dec *json.Decoder, v reflect.Value, path string) error {
	if null, err := opening(dec, path, '[', "array"); null || err != nil {
		return err
	}
	for i := 0; dec.More(); i++ {
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
		if err := decodeValue(dec, v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
			var pe *problem.Error
			if errors.As(err, &pe) && pe.Index == nil {
				pe.Index = &i
			}
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return malformed(path, err)
	}
	return nil
}

// opening reads the delimiter that opens a value of kind what, or null.
func opening(dec *json.Decoder, path string, delim json.Delim, what string) (null bool, err error) {
	tok, err := dec.Token()
	switch {
	case err != nil:
		return false, malformed(path, err)
	case tok == nil:
		return true, nil
	case tok != delim:
		return false, problem.New(problem.Invalid, "%s: want a JSON %s", path, what)
	}
	return false, nil
}

var fieldCache sync.Map // reflect.Type → map[string]int

// fieldsOf maps a struct's JSON member names to field indexes.
func fieldsOf(t reflect.Type) map[string]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = i
	}
	fieldCache.Store(t, m)
	return m
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// malformed describes a syntax or type error without Go's type names.
func malformed(path string, err error) error {
	where := ""
	if path != "" {
		where = " at " + path
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return problem.Wrap(problem.Invalid, err, fmt.Sprintf("malformed JSON%s: a JSON %s where %s is expected", where, te.Value, jsonKind(te.Type)))
	}
	return problem.Wrap(problem.Invalid, err, fmt.Sprintf("malformed JSON%s: %s", where, strings.TrimPrefix(err.Error(), "json: ")))
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	}
	return "another value"
}
