#!/usr/bin/env python3
"""Where a plugin's time goes, from `perf script -F comm,tid,ip,sym,dso`
of `bench p8-loop` run with SWITCHYARD_PERF_MAP=1 (BENCHMARKS.md, P8).

Each sample goes to the category of its innermost frame that names one
(JSON, hashing, regex, component glue, the interpreter); a sample whose leaf
is outside the guest's code is the host's (wasmtime, switchyard, libc, the
kernel). Also printed: the samples whose leaf allocates or frees in the
guest, across categories, and the host's top functions.

    perf script -i perf.data -F comm,tid,ip,sym,dso > samples.txt
    scripts/perf-categories.py samples.txt
"""
import collections
import re
import sys

RULES = [(name, re.compile(pattern)) for name, pattern in [
    ('JSON (C encoder and decoder, float repr)',
     r'encoder_|scanner_|scan_once|_parse_object|_parse_array|scanstring|py_encode_basestring|_Py_dg_dtoa|float_repr'),
    ('hashing (SHA-1 of uuid5)', r'SHA1|sha1|Hacl|hashlib|_sha'),
    ('regex', r'sre_'),
    ('component glue: lifting and lowering, export and import calls (guest side)',
     r'wit_dylib|componentize_py|pyo3|trampoline|__rdl_|call_import|cabi_'),
    ('interpreter (bytecode loop and the builtins it calls)', r'_PyEval_EvalFrameDefault'),
]]
ALLOC = re.compile(r'malloc|free|[Dd]ealloc|realloc|GC_|_Py_NewReference')


def samples(path):
    """Each sample's frames, leaf first, as (symbol, dso)."""
    out, cur = [], None
    for line in open(path):
        if not line.strip():
            if cur:
                out.append(cur)
            cur = None
        elif not line[0].isspace():
            cur = []
        elif cur is not None:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                m = re.match(r'(.*) \((.*)\)$', parts[1])
                cur.append((m.group(1), m.group(2)) if m else (parts[1], ''))
    if cur:
        out.append(cur)
    return out


def main():
    all_samples = samples(sys.argv[1])
    n = len(all_samples)
    cats, host, alloc = collections.Counter(), collections.Counter(), 0
    for frames in all_samples:
        leaf, dso = frames[0]
        if 'perf-' not in dso:
            cats['host: wasmtime, switchyard, libc, kernel'] += 1
            host[leaf] += 1
            continue
        alloc += bool(ALLOC.search(leaf))
        cat = 'guest: other'
        for sym, _ in frames:
            hit = next((name for name, r in RULES if r.search(sym)), None)
            if hit:
                cat = hit
                break
        cats[cat] += 1
    print(f'{n} samples')
    for name, count in cats.most_common():
        print(f'{100 * count / n:5.1f}%  {name}')
    print(f'{100 * alloc / n:5.1f}%  of which the guest allocates or frees (leaf)')
    print('host, top functions:')
    for name, count in host.most_common(10):
        print(f'   {100 * count / n:4.1f}%  {name[:100]}')


if __name__ == '__main__':
    main()
