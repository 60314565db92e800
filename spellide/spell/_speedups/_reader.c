/* The reader's fast path, in C: the common shapes of Spell source read in one pass.
 *
 * spellide/spell/reader.py is the reader; this module only speeds up the inputs that are
 * made of the common shapes (see reader.py's _TOKEN_RE for what each one is):
 *   whitespace, commas, ; and #! comments, C-style comment markers at a line's start;
 *   ( ) [ ] { } (maps without duplicate keys or an odd number of forms);
 *   plain symbols, nil/true/false, plain integers, plain keywords, strings;
 *   the prefix macros ' ` ~ ~@ @ #' (they wrap the next form in a two-element list);
 *   any other ASCII atom, handed to reader._atom (floats, ns/name symbols, :ns/kw, ...).
 * It builds exactly the objects the Python reader builds (List, Vector, Map, Symbol, Span with
 * the same offsets and the same SourceLines) and returns (forms, spans). On anything else, a
 * character outside ASCII outside a string, #( #{ #_ ^ \c #"..." and the other dispatch forms,
 * and every error, it returns None, and the Python reader reads the text instead: errors and
 * rare forms are always the Python reader's, so their messages and positions cannot differ.
 *
 * configure() receives the Python classes and helpers once (reader.py calls it on import).
 * The caller pauses the garbage collector around big reads, as for the Python reader.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DEPTH 2000

enum { K_TOP, K_LIST, K_VEC, K_MAP, K_WRAP };

typedef struct {
    int kind;
    Py_ssize_t start;     /* offset of the opening delimiter / macro */
    PyObject *items;      /* list (collections and top level) */
    PyObject *spans;      /* list */
    PyObject *wrap_name;  /* borrowed: the wrapping symbol's name (WRAP) */
    PyObject *mspan;      /* owned: the macro's span (WRAP) */
} Frame;

/* configured objects (owned references) */
static PyObject *SpanType, *SymbolType, *ListType, *VectorType, *MapType, *KeywordType;
static PyObject *D_start, *D_end, *D_at;             /* Span slot descriptors */
static PyObject *D_ns, *D_name, *D_sspan, *D_hash;   /* Symbol slot descriptors */
static PyObject *KwCache, *Unescape, *Atom;
static PyObject *S_sym, *S_span, *S_spans;           /* "sym", "span", "spans" */
static PyObject *N_quote, *N_unquote, *N_splicing, *N_deref, *N_var;
static PyObject *SymHash;                            /* name -> hash(("sym", None, name)) */
static int configured = 0;

static inline int set_slot(PyObject *descr, PyObject *obj, PyObject *value) {
    return Py_TYPE(descr)->tp_descr_set(descr, obj, value);
}

static PyObject *make_span(PyObject *lines, Py_ssize_t s, Py_ssize_t e) {
    PyTypeObject *tp = (PyTypeObject *)SpanType;
    PyObject *o = tp->tp_alloc(tp, 0);
    if (!o) return NULL;
    PyObject *a = PyLong_FromSsize_t(s), *b = PyLong_FromSsize_t(e);
    if (!a || !b || set_slot(D_start, o, a) < 0 || set_slot(D_end, o, b) < 0
            || set_slot(D_at, o, lines) < 0) {
        Py_XDECREF(a); Py_XDECREF(b); Py_DECREF(o);
        return NULL;
    }
    Py_DECREF(a); Py_DECREF(b);
    return o;
}

/* Symbol(name, None, span), its hash computed as Symbol.__init__ computes it. */
static PyObject *make_symbol(PyObject *name, PyObject *span) {
    PyObject *h = PyDict_GetItemWithError(SymHash, name);  /* borrowed */
    if (!h) {
        if (PyErr_Occurred()) return NULL;
        PyObject *key = PyTuple_Pack(3, S_sym, Py_None, name);
        if (!key) return NULL;
        Py_hash_t hv = PyObject_Hash(key);
        Py_DECREF(key);
        if (hv == -1 && PyErr_Occurred()) return NULL;
        PyObject *hl = PyLong_FromSsize_t(hv);
        if (!hl) return NULL;
        if (PyDict_SetItem(SymHash, name, hl) < 0) { Py_DECREF(hl); return NULL; }
        Py_DECREF(hl);
        h = hl;  /* still alive: the dict holds it */
    }
    PyTypeObject *tp = (PyTypeObject *)SymbolType;
    PyObject *o = tp->tp_alloc(tp, 0);
    if (!o) return NULL;
    if (set_slot(D_ns, o, Py_None) < 0 || set_slot(D_name, o, name) < 0
            || set_slot(D_sspan, o, span) < 0 || set_slot(D_hash, o, h) < 0) {
        Py_DECREF(o);
        return NULL;
    }
    return o;
}

/* A List or Vector of the list's items, with span and spans set. */
static PyObject *make_seq(PyObject *type, PyObject *items, PyObject *spans, PyObject *span) {
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyTypeObject *tp = (PyTypeObject *)type;
    PyObject *o = tp->tp_alloc(tp, n);
    if (!o) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PyList_GET_ITEM(items, i);
        Py_INCREF(x);
        PyTuple_SET_ITEM(o, i, x);
    }
    PyObject *st = PyList_AsTuple(spans);
    if (!st || PyObject_SetAttr(o, S_span, span) < 0 || PyObject_SetAttr(o, S_spans, st) < 0) {
        Py_XDECREF(st); Py_DECREF(o);
        return NULL;
    }
    Py_DECREF(st);
    return o;
}

/* A Map, or NULL with no exception set when the Python reader must decide (odd count,
 * duplicate keys: both errors). */
static PyObject *make_map(PyObject *items, PyObject *spans, PyObject *span) {
    Py_ssize_t n = PyList_GET_SIZE(items);
    if (n % 2) return NULL;
    PyObject *m = PyObject_CallNoArgs(MapType);
    if (!m) return NULL;
    for (Py_ssize_t i = 0; i < n; i += 2) {
        if (PyDict_SetItem(m, PyList_GET_ITEM(items, i), PyList_GET_ITEM(items, i + 1)) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    if (2 * PyDict_GET_SIZE(m) != n) { Py_DECREF(m); return NULL; }
    PyObject *pairs = PyTuple_New(n / 2);
    if (!pairs) { Py_DECREF(m); return NULL; }
    for (Py_ssize_t i = 0; i < n; i += 2) {
        PyObject *p = PyTuple_Pack(2, PyList_GET_ITEM(spans, i), PyList_GET_ITEM(spans, i + 1));
        if (!p) { Py_DECREF(pairs); Py_DECREF(m); return NULL; }
        PyTuple_SET_ITEM(pairs, i / 2, p);
    }
    if (PyObject_SetAttr(m, S_span, span) < 0 || PyObject_SetAttr(m, S_spans, pairs) < 0) {
        Py_DECREF(pairs); Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(pairs);
    return m;
}

/* ASCII character classes (reader.py: _TERM, _SYM_START, _SYM_CHAR). */
static unsigned char TERM[128], SYMSTART[128], SYMCHAR[128], BLANK[128];

static void init_classes(void) {
    for (int c = 0; c < 128; c++) {
        int ws = (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20);  /* str.isspace() */
        BLANK[c] = ws && c != '\n';
        TERM[c] = ws || (c && strchr(",\";@^`~()[]{}\\", c) != NULL);
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        SYMCHAR[c] = alnum || c == '_' || (c && strchr("*!?<>=&$.-+'#%", c) != NULL);
        SYMSTART[c] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
                      || (c && strchr("*!?<>=&$.-+", c) != NULL);
    }
}

#define CH(i) PyUnicode_READ(kind, data, (i))

static void free_frames(Frame *frames, Py_ssize_t depth) {
    for (Py_ssize_t i = 0; i <= depth; i++) {
        Py_XDECREF(frames[i].items);
        Py_XDECREF(frames[i].spans);
        Py_XDECREF(frames[i].mspan);
    }
}

/* scan(text, lines) -> (forms, spans) | None */
static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *text, *lines;
    if (!PyArg_ParseTuple(args, "UO", &text, &lines)) return NULL;
    if (!configured) { PyErr_SetString(PyExc_RuntimeError, "_reader is not configured"); return NULL; }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);

    Py_ssize_t cap = 64, depth = 0;   /* frames[depth] is the innermost open frame */
    Frame *frames = PyMem_Calloc(cap, sizeof(Frame));
    if (!frames) return PyErr_NoMemory();
    frames[0].kind = K_TOP;
    frames[0].items = PyList_New(0);
    frames[0].spans = PyList_New(0);
    if (!frames[0].items || !frames[0].spans) goto fail;

    Py_ssize_t i = 0;
    PyObject *value = NULL, *span = NULL;
    for (;;) {
        /* skipped text, as reader._SKIP */
        for (;;) {
            if (i >= n) break;
            Py_UCS4 c = CH(i);
            if (i == 0 || CH(i - 1) == '\n') {   /* a line start: C-style comment markers after blanks */
                Py_ssize_t j = i;
                while (j < n && CH(j) < 128 && BLANK[CH(j)]) j++;
                if (j + 1 < n && ((CH(j) == '/' && (CH(j + 1) == '/' || CH(j + 1) == '*'))
                                  || (CH(j) == '*' && CH(j + 1) == '/'))) {
                    while (j < n && CH(j) != '\n') j++;
                    i = j;
                    continue;
                }
            }
            if (c < 128 && BLANK[c]) {
                while (i < n && CH(i) < 128 && BLANK[CH(i)]) i++;
            } else if (c == ',' || c == '\n') {
                i++;
            } else if (c == ';' || (c == '#' && i + 1 < n && CH(i + 1) == '!')) {
                while (i < n && CH(i) != '\n') i++;
            } else {
                break;
            }
        }
        if (i >= n) {
            if (depth > 0) goto fallback;   /* EOF inside a form: the Python reader's error */
            break;
        }
        Py_UCS4 c = CH(i);
        if (c >= 128) goto fallback;
        Py_ssize_t s = i;
        Frame *cur = &frames[depth];

        if (c == '(' || c == '[' || c == '{') {
            if (depth >= MAX_DEPTH) goto fallback;
            if (depth + 1 >= cap) {
                Frame *nf = PyMem_Realloc(frames, 2 * cap * sizeof(Frame));
                if (!nf) { PyErr_NoMemory(); goto fail; }
                memset(nf + cap, 0, cap * sizeof(Frame));
                frames = nf;
                cap *= 2;
            }
            depth++;
            Frame *f = &frames[depth];
            f->kind = c == '(' ? K_LIST : c == '[' ? K_VEC : K_MAP;
            f->start = s;
            f->items = PyList_New(0);
            f->spans = PyList_New(0);
            f->wrap_name = NULL;
            f->mspan = NULL;
            if (!f->items || !f->spans) goto fail;
            i++;
            continue;
        }
        if (c == ')' || c == ']' || c == '}') {
            int want = c == ')' ? K_LIST : c == ']' ? K_VEC : K_MAP;
            if (cur->kind != want) goto fallback;   /* unmatched (or tolerated) closer */
            i++;
            span = make_span(lines, cur->start, i);
            if (!span) goto fail;
            if (want == K_MAP) {
                value = make_map(cur->items, cur->spans, span);
                if (!value) { if (PyErr_Occurred()) PyErr_Clear(); Py_CLEAR(span); goto fallback; }
            } else {
                value = make_seq(want == K_LIST ? ListType : VectorType, cur->items, cur->spans, span);
                if (!value) goto fail;
            }
            Py_CLEAR(cur->items);
            Py_CLEAR(cur->spans);
            depth--;
        } else if (c == '\'' || c == '`' || c == '~' || c == '@'
                   || (c == '#' && i + 1 < n && CH(i + 1) == '\'')) {
            PyObject *name;
            Py_ssize_t e = i + 1;
            if (c == '\'' || c == '`') name = N_quote;
            else if (c == '@') name = N_deref;
            else if (c == '#') { name = N_var; e = i + 2; }
            else if (i + 1 < n && CH(i + 1) == '@') { name = N_splicing; e = i + 2; }
            else name = N_unquote;
            if (depth >= MAX_DEPTH) goto fallback;
            if (depth + 1 >= cap) {
                Frame *nf = PyMem_Realloc(frames, 2 * cap * sizeof(Frame));
                if (!nf) { PyErr_NoMemory(); goto fail; }
                memset(nf + cap, 0, cap * sizeof(Frame));
                frames = nf;
                cap *= 2;
            }
            depth++;
            Frame *f = &frames[depth];
            f->kind = K_WRAP;
            f->start = s;
            f->items = NULL;
            f->spans = NULL;
            f->wrap_name = name;
            f->mspan = make_span(lines, s, e);
            if (!f->mspan) goto fail;
            i = e;
            continue;
        } else if (c == '"') {
            Py_ssize_t j = i + 1;
            int esc = 0;
            while (j < n) {
                Py_UCS4 d = CH(j);
                if (d == '"') break;
                if (d == '\\') { esc = 1; j += 2; continue; }
                j++;
            }
            if (j >= n) goto fallback;   /* EOF inside the string */
            value = PyUnicode_Substring(text, i + 1, j);
            if (!value) goto fail;
            if (esc) {
                PyObject *u = PyObject_CallOneArg(Unescape, value);
                Py_DECREF(value);
                value = u;
                if (!value) { PyErr_Clear(); goto fallback; }
            }
            i = j + 1;
            span = make_span(lines, s, i);
            if (!span) goto fail;
        } else if (c == '#' || c == '^' || c == '\\' || TERM[c]) {
            goto fallback;   /* dispatch forms, metadata, characters */
        } else {
            /* an atom: the run of non-terminating characters */
            Py_ssize_t j = i;
            int sym = 1, intg = 1, kwd = (c == ':');
            while (j < n) {
                Py_UCS4 d = CH(j);
                if (d >= 128) goto fallback;
                if (TERM[d]) break;
                if (!SYMCHAR[d]) sym = 0;
                j++;
            }
            Py_ssize_t len = j - i;
            Py_UCS4 c1 = len > 1 ? CH(i + 1) : 0;
            /* plain symbol: a symbol start, symbol characters, not a sign before a digit */
            int plain_sym = sym && SYMSTART[c] && !((c == '+' || c == '-') && c1 >= '0' && c1 <= '9');
            /* plain integer: [-+]?(0|[1-9][0-9]*) */
            Py_ssize_t k = i + ((c == '+' || c == '-') ? 1 : 0);
            if (k >= j) intg = 0;
            else if (CH(k) == '0') intg = (k + 1 == j);
            else for (Py_ssize_t q = k; q < j; q++) { Py_UCS4 d = CH(q); if (d < '0' || d > '9') { intg = 0; break; } }
            /* plain keyword: ":" then symbol characters (":" itself is not one) */
            if (kwd) {
                kwd = len > 1;
                for (Py_ssize_t q = i + 1; q < j && kwd; q++) if (!SYMCHAR[CH(q)]) kwd = 0;
            }
            i = j;
            span = make_span(lines, s, j);
            if (!span) goto fail;
            if (plain_sym) {
                PyObject *tok = PyUnicode_Substring(text, s, j);
                if (!tok) goto fail;
                if (len == 3 && PyUnicode_CompareWithASCIIString(tok, "nil") == 0) value = Py_NewRef(Py_None);
                else if (len == 4 && PyUnicode_CompareWithASCIIString(tok, "true") == 0) value = Py_NewRef(Py_True);
                else if (len == 5 && PyUnicode_CompareWithASCIIString(tok, "false") == 0) value = Py_NewRef(Py_False);
                else value = make_symbol(tok, span);
                Py_DECREF(tok);
                if (!value) goto fail;
            } else if (intg && len < 4000) {
                char buf[4001];
                for (Py_ssize_t q = 0; q < len; q++) buf[q] = (char)CH(s + q);
                buf[len] = 0;
                value = PyLong_FromString(buf, NULL, 10);
                if (!value) goto fail;
            } else if (kwd) {
                PyObject *tok = PyUnicode_Substring(text, s + 1, j);
                if (!tok) goto fail;
                value = PyDict_GetItemWithError(KwCache, tok);
                if (value) {
                    Py_INCREF(value);
                } else if (PyErr_Occurred()) {
                    Py_DECREF(tok);
                    goto fail;
                } else {
                    value = PyObject_CallOneArg(KeywordType, tok);
                    if (!value || PyDict_SetItem(KwCache, tok, value) < 0) { Py_DECREF(tok); goto fail; }
                }
                Py_DECREF(tok);
            } else {
                PyObject *tok = PyUnicode_Substring(text, s, j);
                if (!tok) goto fail;
                value = PyObject_CallFunctionObjArgs(Atom, tok, span, NULL);
                Py_DECREF(tok);
                if (!value) { PyErr_Clear(); Py_CLEAR(span); goto fallback; }
            }
        }

        /* a complete form: hand it to the innermost frame, resolving the prefix macros */
        for (;;) {
            Frame *f = &frames[depth];
            if (f->kind != K_WRAP) {
                if (PyList_Append(f->items, value) < 0 || PyList_Append(f->spans, span) < 0) goto fail;
                Py_CLEAR(value);
                Py_CLEAR(span);
                break;
            }
            PyObject *wspan = make_span(lines, f->start, i);  /* the form ends where we are */
            if (!wspan) goto fail;
            PyObject *head = make_symbol(f->wrap_name, f->mspan);
            if (!head) { Py_DECREF(wspan); goto fail; }
            PyObject *items = PyList_New(2), *spans = PyList_New(2);
            if (!items || !spans) { Py_XDECREF(items); Py_XDECREF(spans); Py_DECREF(head); Py_DECREF(wspan); goto fail; }
            PyList_SET_ITEM(items, 0, head);
            PyList_SET_ITEM(items, 1, value);        /* steals */
            Py_INCREF(f->mspan);
            PyList_SET_ITEM(spans, 0, f->mspan);
            PyList_SET_ITEM(spans, 1, span);         /* steals */
            value = NULL;
            span = NULL;
            PyObject *w = make_seq(ListType, items, spans, wspan);
            Py_DECREF(items);
            Py_DECREF(spans);
            if (!w) { Py_DECREF(wspan); goto fail; }
            value = w;
            span = wspan;
            Py_CLEAR(f->mspan);
            depth--;
        }
    }

    {
        PyObject *res = PyTuple_Pack(2, frames[0].items, frames[0].spans);
        free_frames(frames, depth);
        PyMem_Free(frames);
        return res;
    }

fallback:
    Py_XDECREF(value);
    Py_XDECREF(span);
    free_frames(frames, depth);
    PyMem_Free(frames);
    Py_RETURN_NONE;

fail:
    Py_XDECREF(value);
    Py_XDECREF(span);
    free_frames(frames, depth);
    PyMem_Free(frames);
    return NULL;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *span_t, *sym_t, *list_t, *vec_t, *map_t, *kw_t, *kwcache, *unescape, *atom;
    if (!PyArg_ParseTuple(args, "OOOOOOO!OO", &span_t, &sym_t, &list_t, &vec_t, &map_t, &kw_t,
                          &PyDict_Type, &kwcache, &unescape, &atom))
        return NULL;
    if (!PyType_Check(span_t) || !PyType_Check(sym_t) || !PyType_Check(list_t)
            || !PyType_Check(vec_t) || !PyType_Check(map_t)) {
        PyErr_SetString(PyExc_TypeError, "configure: expected the reader's classes");
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)list_t, &PyTuple_Type)
            || !PyType_IsSubtype((PyTypeObject *)vec_t, &PyTuple_Type)
            || !PyType_IsSubtype((PyTypeObject *)map_t, &PyDict_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure: List/Vector must be tuples, Map a dict");
        return NULL;
    }
    PyObject *sd = ((PyTypeObject *)span_t)->tp_dict, *yd = ((PyTypeObject *)sym_t)->tp_dict;
    PyObject *ds = PyDict_GetItemString(sd, "start"), *de = PyDict_GetItemString(sd, "end"),
             *da = PyDict_GetItemString(sd, "_at"), *dn = PyDict_GetItemString(yd, "ns"),
             *dm = PyDict_GetItemString(yd, "name"), *dp = PyDict_GetItemString(yd, "span"),
             *dh = PyDict_GetItemString(yd, "_hash");
    PyObject *all[] = {ds, de, da, dn, dm, dp, dh};
    for (int k = 0; k < 7; k++) {
        if (!all[k] || !Py_TYPE(all[k])->tp_descr_set) {
            PyErr_SetString(PyExc_TypeError, "configure: Span/Symbol slots are not as expected");
            return NULL;
        }
    }
#define KEEP(var, val) do { Py_XSETREF(var, Py_NewRef(val)); } while (0)
    KEEP(SpanType, span_t); KEEP(SymbolType, sym_t); KEEP(ListType, list_t);
    KEEP(VectorType, vec_t); KEEP(MapType, map_t); KEEP(KeywordType, kw_t);
    KEEP(D_start, ds); KEEP(D_end, de); KEEP(D_at, da);
    KEEP(D_ns, dn); KEEP(D_name, dm); KEEP(D_sspan, dp); KEEP(D_hash, dh);
    KEEP(KwCache, kwcache); KEEP(Unescape, unescape); KEEP(Atom, atom);
    if (!SymHash && !(SymHash = PyDict_New())) return NULL;
    PyDict_Clear(SymHash);
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Span, Symbol, List, Vector, Map, Keyword, kwcache, unescape, atom)"},
    {"scan", scan, METH_VARARGS,
     "scan(text, lines) -> (forms, spans), or None when the Python reader must read text"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_reader",
                                    "The Spell reader's fast path (see reader.py).", -1, methods};

PyMODINIT_FUNC PyInit__reader(void) {
    init_classes();
    S_sym = PyUnicode_InternFromString("sym");
    S_span = PyUnicode_InternFromString("span");
    S_spans = PyUnicode_InternFromString("spans");
    N_quote = PyUnicode_InternFromString("quote");
    N_unquote = PyUnicode_InternFromString("unquote");
    N_splicing = PyUnicode_InternFromString("unquote-splicing");
    N_deref = PyUnicode_InternFromString("deref");
    N_var = PyUnicode_InternFromString("var");
    if (!S_sym || !S_span || !S_spans || !N_quote || !N_unquote || !N_splicing || !N_deref || !N_var)
        return NULL;
    return PyModule_Create(&module);
}
