#!/usr/bin/env python3
"""Lists C++ function definitions longer than --max lines (signature to
closing brace, lambdas and local classes included) under the given folders.

    scripts/function-lengths.py --max 150 lib tools

Exits 1 when any is found (ctest runs it: docs/architecture.md, "no
function over 150 lines"). A brace matcher over the source with comments,
strings and preprocessor lines blanked: precise for LLVM-style code, where
a definition's body opens a brace after a parenthesised parameter list.
"""
import argparse
import os
import re
import sys

NOT_FUNCTIONS = re.compile(
    r'^\s*(?:template\s*<[^{]*>\s*)?(namespace|class|struct|union|enum|extern)\b')
CONTROL = re.compile(r'\b(if|for|while|switch|catch|do|else|try)\s*$')


def blank(text):
    """Comments, string/char literals and preprocessor lines become spaces
    (newlines kept, so line numbers stay)."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == '#':
            j = text.find('\n', i)
            while j != -1 and text[j - 1] == '\\':
                j = text.find('\n', j + 1)
            j = n if j == -1 else j
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
            continue
        if c in ' \t':
            out.append(c)
            i += 1
            continue
        line_start = c == '\n'
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j == -1 else j
            out.append(' ' * (j - i))
            i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j == -1 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = ')' + m.group(1) + '"'
            j = text.find(end, i)
            j = n if j == -1 else j + len(end)
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            out.append(' ' * (j + 1 - i))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def functions(path):
    """(name, first line, last line) of every function definition."""
    with open(path, encoding='utf-8', errors='replace') as f:
        text = blank(f.read())
    found = []
    stack = []  # (kind, start line, name)
    header_start = 0
    line = 1
    for i, c in enumerate(text):
        if c == '\n':
            line += 1
        elif c in ';{}':
            if c == '{':
                header = text[header_start:i]
                inside_function = any(k == 'function' for k, _, _ in stack)
                kind = 'block'
                name = ''
                if not inside_function:
                    flat = ' '.join(header.split())
                    if (')' in flat and not NOT_FUNCTIONS.match(flat)
                            and not CONTROL.search(flat.split('(')[0])
                            and '=' not in flat.split('(')[0]):
                        kind = 'function'
                        m = re.search(r'([\w:~<>]+)\s*\(', flat)
                        name = m.group(1) if m else flat[:40]
                # The signature's first line.
                lead = header[:len(header) - len(header.lstrip())]
                first = line - header.count('\n') + lead.count('\n')
                stack.append((kind, first, name))
            elif c == '}' and stack:
                kind, first, name = stack.pop()
                if kind == 'function':
                    found.append((name, first, line))
            header_start = i + 1
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--max', type=int, default=150)
    ap.add_argument('folders', nargs='+')
    args = ap.parse_args()
    long_ones = []
    for folder in args.folders:
        for root, _, files in os.walk(folder):
            for f in sorted(files):
                if f.endswith(('.cpp', '.h', '.c', '.hpp')):
                    p = os.path.join(root, f)
                    for name, first, last in functions(p):
                        length = last - first + 1
                        if length > args.max:
                            long_ones.append((length, p, first, name))
    for length, p, first, name in sorted(long_ones, reverse=True):
        print(f'{p}:{first}: {name}: {length} lines (limit {args.max})')
    if long_ones:
        print(f'{len(long_ones)} function(s) over {args.max} lines')
        return 1
    print(f'no function over {args.max} lines')
    return 0


if __name__ == '__main__':
    sys.exit(main())
