package stream_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportedDocumented fails on an exported identifier of the public
// packages (everything under pkg/ but internal/ and embedded's Kafka
// protocol shims) without a doc comment: top-level functions, types,
// constants and variables, methods of exported types, exported struct
// fields and interface methods. `make lint` runs it.
func TestExportedDocumented(t *testing.T) {
	fset := token.NewFileSet()
	var missing []string
	report := func(pos token.Pos, what string) {
		p := fset.Position(pos)
		missing = append(missing, p.Filename+":"+itoa(p.Line)+": "+what)
	}
	documented := func(groups ...*ast.CommentGroup) bool {
		for _, g := range groups {
			if g != nil && strings.TrimSpace(g.Text()) != "" {
				return true
			}
		}
		return false
	}
	checkFields := func(owner string, fields *ast.FieldList, kind string) {
		if fields == nil {
			return
		}
		for _, f := range fields.List {
			for _, n := range f.Names {
				if n.IsExported() && !documented(f.Doc, f.Comment) {
					report(n.Pos(), kind+" "+owner+"."+n.Name)
				}
			}
		}
	}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "internal" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if f.Name.Name == "main" {
			return nil
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				name := d.Name.Name
				if d.Recv != nil {
					recv := receiverName(d.Recv.List[0].Type)
					if !ast.IsExported(recv) {
						continue
					}
					name = recv + "." + name
				}
				if !documented(d.Doc) {
					report(d.Pos(), "func "+name)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						if !documented(s.Doc, s.Comment, d.Doc) {
							report(s.Pos(), "type "+s.Name.Name)
						}
						switch tt := s.Type.(type) {
						case *ast.StructType:
							checkFields(s.Name.Name, tt.Fields, "field")
						case *ast.InterfaceType:
							checkFields(s.Name.Name, tt.Methods, "method")
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() && !documented(s.Doc, s.Comment, d.Doc) {
								report(n.Pos(), d.Tok.String()+" "+n.Name)
							}
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("%d exported identifiers without a doc comment:\n%s", len(missing), strings.Join(missing, "\n"))
	}
}

func receiverName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for n >= 10 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	b[i] = byte('0' + n)
	return string(b[i:])
}
