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
    Py_ssize_t base;      /* where its forms start on the value stack */
    PyObject *wrap_name;  /* borrowed: the wrapping symbol's name (WRAP) */
    PyObject *mspan;      /* owned: the macro's span (WRAP) */
} Frame;

/* The forms read so far in all open frames, innermost last, and their spans (owned). */
typedef struct {
    PyObject **vals, **sps;
    Py_ssize_t top, cap;
} Stack;

static int push(Stack *st, PyObject *value, PyObject *span) {  /* steals both */
    if (st->top == st->cap) {
        Py_ssize_t cap = st->cap ? 2 * st->cap : 256;
        PyObject **v = PyMem_Realloc(st->vals, cap * sizeof(PyObject *));
        if (v) st->vals = v;
        PyObject **s = v ? PyMem_Realloc(st->sps, cap * sizeof(PyObject *)) : NULL;
        if (s) st->sps = s;
        if (!v || !s) { Py_DECREF(value); Py_DECREF(span); PyErr_NoMemory(); return -1; }
        st->cap = cap;
    }
    st->vals[st->top] = value;
    st->sps[st->top] = span;
    st->top++;
    return 0;
}

static void drop_from(Stack *st, Py_ssize_t base) {
    while (st->top > base) {
        st->top--;
        Py_DECREF(st->vals[st->top]);
        Py_DECREF(st->sps[st->top]);
    }
}

/* configured objects (owned references) */
static PyObject *SpanType, *SymbolType, *ListType, *VectorType, *MapType, *KeywordType;
static Py_ssize_t O_start, O_end, O_at, O_ns, O_name, O_sspan, O_hash;  /* slot offsets */
static PyObject *KwCache, *Unescape, *Atom;
static PyObject *S_sym, *S_span, *S_spans;           /* "sym", "span", "spans" */
static PyObject *N_quote, *N_unquote, *N_splicing, *N_deref, *N_var;
static PyObject *SymHash;                            /* name -> hash(("sym", None, name)) */
static int configured = 0;

/* A slot of a freshly allocated object (so still NULL); takes a new reference to value. */
#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

static PyObject *make_span(PyObject *lines, Py_ssize_t s, Py_ssize_t e) {
    PyTypeObject *tp = (PyTypeObject *)SpanType;
    PyObject *a = PyLong_FromSsize_t(s);
    if (!a) return NULL;
    PyObject *b = PyLong_FromSsize_t(e);
    if (!b) { Py_DECREF(a); return NULL; }
    PyObject *o = tp->tp_alloc(tp, 0);
    if (!o) { Py_DECREF(a); Py_DECREF(b); return NULL; }
    SLOT(o, O_start) = a;
    SLOT(o, O_end) = b;
    SLOT(o, O_at) = Py_NewRef(lines);
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
        if (PyDict_GET_SIZE(SymHash) >= 65536) PyDict_Clear(SymHash);  /* a cache, not a registry */
        if (PyDict_SetItem(SymHash, name, hl) < 0) { Py_DECREF(hl); return NULL; }
        Py_DECREF(hl);
        h = hl;  /* still alive: the dict holds it */
    }
    PyTypeObject *tp = (PyTypeObject *)SymbolType;
    PyObject *o = tp->tp_alloc(tp, 0);
    if (!o) return NULL;
    SLOT(o, O_ns) = Py_NewRef(Py_None);
    SLOT(o, O_name) = Py_NewRef(name);
    SLOT(o, O_sspan) = Py_NewRef(span);
    SLOT(o, O_hash) = Py_NewRef(h);
    return o;
}

/* A tuple (of type tp) of n references taken from src. */
static PyObject *take_tuple(PyTypeObject *tp, PyObject **src, Py_ssize_t n) {
    PyObject *o = tp == &PyTuple_Type ? PyTuple_New(n) : tp->tp_alloc(tp, n);
    if (!o) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(o, i, src[i]);
        src[i] = NULL;
    }
    return o;
}

/* A List or Vector of the stack's forms from base up, with span and spans set; the stack
 * gives up its references. */
static PyObject *make_seq(PyObject *type, Stack *st, Py_ssize_t base, PyObject *span) {
    Py_ssize_t n = st->top - base;
    PyObject *o = take_tuple((PyTypeObject *)type, st->vals + base, n);
    if (!o) return NULL;
    PyObject *sp = take_tuple(&PyTuple_Type, st->sps + base, n);
    if (!sp) {  /* give the forms back, so the caller's clean-up stays simple */
        for (Py_ssize_t i = 0; i < n; i++) st->vals[base + i] = Py_NewRef(PyTuple_GET_ITEM(o, i));
        Py_DECREF(o);
        return NULL;
    }
    st->top = base;
    if (PyObject_SetAttr(o, S_span, span) < 0 || PyObject_SetAttr(o, S_spans, sp) < 0) {
        Py_DECREF(sp); Py_DECREF(o);
        return NULL;
    }
    Py_DECREF(sp);
    return o;
}

/* A Map of the stack's forms from base up, or NULL with no exception set when the Python
 * reader must decide (odd count, duplicate keys: both errors). The stack keeps its
 * references (the caller drops them). */
static PyObject *make_map(Stack *st, Py_ssize_t base, PyObject *span) {
    Py_ssize_t n = st->top - base;
    PyObject **v = st->vals + base, **s = st->sps + base;
    if (n % 2) return NULL;
    PyObject *m = PyObject_CallNoArgs(MapType);
    if (!m) return NULL;
    for (Py_ssize_t i = 0; i < n; i += 2) {
        if (PyDict_SetItem(m, v[i], v[i + 1]) < 0) { Py_DECREF(m); return NULL; }
    }
    if (2 * PyDict_GET_SIZE(m) != n) { Py_DECREF(m); return NULL; }
    PyObject *pairs = PyTuple_New(n / 2);
    if (!pairs) { Py_DECREF(m); return NULL; }
    for (Py_ssize_t i = 0; i < n; i += 2) {
        PyObject *p = PyTuple_Pack(2, s[i], s[i + 1]);
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

static void free_all(Frame *frames, Py_ssize_t depth, Stack *st) {
    for (Py_ssize_t i = 0; i <= depth; i++) Py_XDECREF(frames[i].mspan);
    PyMem_Free(frames);
    drop_from(st, 0);
    PyMem_Free(st->vals);
    PyMem_Free(st->sps);
}

/* A list of n references taken from src. */
static PyObject *take_list(PyObject **src, Py_ssize_t n) {
    PyObject *o = PyList_New(n);
    if (!o) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyList_SET_ITEM(o, i, src[i]);
        src[i] = NULL;
    }
    return o;
}

/* A new innermost frame (its kind left to the caller), growing the array when full. */
static Frame *open_frame(Frame **frames, Py_ssize_t *cap, Py_ssize_t *depth, Py_ssize_t base,
                         Py_ssize_t start) {
    if (*depth + 1 >= *cap) {
        Frame *nf = PyMem_Realloc(*frames, 2 * *cap * sizeof(Frame));
        if (!nf) { PyErr_NoMemory(); return NULL; }
        memset(nf + *cap, 0, *cap * sizeof(Frame));
        *frames = nf;
        *cap *= 2;
    }
    Frame *f = &(*frames)[++*depth];
    f->start = start;
    f->base = base;
    f->wrap_name = NULL;
    f->mspan = NULL;
    return f;
}

/* scan(text, lines) -> (forms, spans) | None */
static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *text, *lines;
    if (!PyArg_ParseTuple(args, "UO", &text, &lines)) return NULL;
    if (!configured) { PyErr_SetString(PyExc_RuntimeError, "_reader is not configured"); return NULL; }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);

    Stack st = {NULL, NULL, 0, 0};
    Py_ssize_t cap = 64, depth = 0;   /* frames[depth] is the innermost open frame */
    Frame *frames = PyMem_Calloc(cap, sizeof(Frame));
    if (!frames) return PyErr_NoMemory();
    frames[0].kind = K_TOP;

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
            Frame *f = open_frame(&frames, &cap, &depth, st.top, s);
            if (!f) goto fail;
            f->kind = c == '(' ? K_LIST : c == '[' ? K_VEC : K_MAP;
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
                value = make_map(&st, cur->base, span);
                if (!value) { if (PyErr_Occurred()) PyErr_Clear(); Py_CLEAR(span); goto fallback; }
                drop_from(&st, cur->base);
            } else {
                value = make_seq(want == K_LIST ? ListType : VectorType, &st, cur->base, span);
                if (!value) goto fail;
            }
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
            Frame *f = open_frame(&frames, &cap, &depth, st.top, s);
            if (!f) goto fail;
            f->kind = K_WRAP;
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
                PyObject *v = value, *sp = span;
                value = span = NULL;
                if (push(&st, v, sp) < 0) goto fail;
                break;
            }
            PyObject *wspan = make_span(lines, f->start, i);  /* the form ends where we are */
            if (!wspan) goto fail;
            PyObject *head = make_symbol(f->wrap_name, f->mspan);
            if (!head) { Py_DECREF(wspan); goto fail; }
            Py_ssize_t b = st.top;
            PyObject *v = value, *sp = span;
            value = span = NULL;
            if (push(&st, head, Py_NewRef(f->mspan)) < 0) { Py_DECREF(v); Py_DECREF(sp); Py_DECREF(wspan); goto fail; }
            if (push(&st, v, sp) < 0) { Py_DECREF(wspan); goto fail; }
            PyObject *w = make_seq(ListType, &st, b, wspan);
            if (!w) { Py_DECREF(wspan); goto fail; }
            value = w;
            span = wspan;
            Py_CLEAR(f->mspan);
            depth--;
        }
    }

    {
        PyObject *forms = take_list(st.vals, st.top);
        PyObject *spans = forms ? take_list(st.sps, st.top) : NULL;
        if (!spans) {
            if (forms) {  /* hand the forms back so that free_all drops each once */
                for (Py_ssize_t k = 0; k < st.top; k++) st.vals[k] = Py_NewRef(PyList_GET_ITEM(forms, k));
                Py_DECREF(forms);
            }
            goto fail;
        }
        st.top = 0;
        free_all(frames, depth, &st);
        PyObject *res = PyTuple_Pack(2, forms, spans);
        Py_DECREF(forms);
        Py_DECREF(spans);
        return res;
    }

fallback:
    Py_XDECREF(value);
    Py_XDECREF(span);
    free_all(frames, depth, &st);
    Py_RETURN_NONE;

fail:
    Py_XDECREF(value);
    Py_XDECREF(span);
    free_all(frames, depth, &st);
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
    Py_ssize_t off[7];
    for (int k = 0; k < 7; k++) {
        /* __slots__ members holding any object: written straight into the new objects */
        if (!all[k] || !Py_IS_TYPE(all[k], &PyMemberDescr_Type)
                || ((PyMemberDescrObject *)all[k])->d_member->type != Py_T_OBJECT_EX) {
            PyErr_SetString(PyExc_TypeError, "configure: Span/Symbol slots are not as expected");
            return NULL;
        }
        off[k] = ((PyMemberDescrObject *)all[k])->d_member->offset;
    }
#define KEEP(var, val) do { Py_XSETREF(var, Py_NewRef(val)); } while (0)
    KEEP(SpanType, span_t); KEEP(SymbolType, sym_t); KEEP(ListType, list_t);
    KEEP(VectorType, vec_t); KEEP(MapType, map_t); KEEP(KeywordType, kw_t);
    O_start = off[0]; O_end = off[1]; O_at = off[2];
    O_ns = off[3]; O_name = off[4]; O_sspan = off[5]; O_hash = off[6];
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
