#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, checks what the installed package
# exports, then configures, builds and runs the outside consumer project against it (its
# CMakeLists.txt is the README's, word for word: tests/readme checks that).
#   Usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "install test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$work/prefix" >/dev/null
pkg=$(find "$work/prefix" -path '*/cmake/ringmaster' -type d)
[ -n "$pkg" ] || fail "no lib*/cmake/ringmaster in the installed prefix"
targets="$pkg/ringmaster-targets.cmake"
[ -f "$targets" ] || fail "no $targets"

# The package exports the three libraries, and nothing of ringmaster's own build: not the
# warnings target, not the header-only dependencies; spdlog only to link with
# ($<LINK_ONLY:...>), never as a usage requirement (include directories, definitions).
for t in ipc worker supervisor worker_c; do
  grep -Eq "add_library\(ringmaster::$t (STATIC|SHARED) IMPORTED\)" "$targets" || fail "ringmaster::$t is not exported"
done
if grep -rn "ringmaster_warnings\|nlohmann" "$pkg"; then
  fail "the installed package names ringmaster_warnings or nlohmann-json (above)"
fi
links=$(grep 'INTERFACE_LINK_LIBRARIES' "$targets")
if sed 's/\\\$<LINK_ONLY:spdlog::spdlog>//g' "$targets" | grep -n "spdlog"; then
  fail "spdlog is in an installed interface other than link-only (above)"
fi
# (A shared build links spdlog into the libraries themselves and exports nothing of it.)
if grep -q "STATIC IMPORTED" "$targets"; then
  grep -q '\$<LINK_ONLY:spdlog::spdlog>' <<<"$links" || fail "spdlog is not linked by the installed static libraries"
fi

# The installed headers are the public API alone: none includes spdlog or nlohmann-json
# (a consumer would need them, at ringmaster's versions), and none includes a ringmaster
# header that is not installed (the internal ones, <ringmaster/*/detail/...> under
# */internal/, stay in the build tree). Then every header compiles on its own, from the
# prefix alone.
inc="$work/prefix/include"
[ -d "$inc/ringmaster" ] || fail "no include/ringmaster in the installed prefix"
mapfile -t headers < <(cd "$inc" && find ringmaster -type f | sort)
[ "${#headers[@]}" -gt 0 ] || fail "no headers installed"
bad=0
for h in "${headers[@]}"; do
  while IFS= read -r line; do
    dep=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"$line")
    case "$dep" in
      spdlog/*|nlohmann/*|fmt/*|boost/*)
        echo "install test: installed $h includes $dep, a dependency the package does not export" >&2; bad=1 ;;
      ringmaster/*)
        [ -f "$inc/$dep" ] || { echo "install test: installed $h includes $dep, which is not installed" >&2; bad=1; } ;;
    esac
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$inc/$h")
done
[ "$bad" = 0 ] || fail "installed headers reach beyond the installed package (above); installed: ${headers[*]}"
for h in "${headers[@]}"; do
  printf '#include <%s>\n#include <%s>\n' "$h" "$h" >"$work/one_header.cpp"  # twice: include guards too
  "${CXX:-c++}" -std=c++20 -fsyntax-only -I"$inc" "$work/one_header.cpp" ||
    fail "installed header $h does not compile on its own against the installed prefix"
done

cmake -S "$src/tests/install/consumer" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/my_program" "$work/build/my_worker"

# The C ABI from the prefix alone, as a user without CMake builds against it (a Makefile,
# cgo, Zig): the header compiles as strict C99, and a C worker links the installed
# libringmaster_worker_c.so by its SONAME and runs (by hand: it says what it serves and
# exits 64, as worker.h promises).
"${CC:-cc}" -std=c99 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$inc" -x c - <<<'#include <ringmaster/worker.h>' ||
  fail "installed ringmaster/worker.h is not valid C99"
libdir=$(dirname "$(find "$work/prefix" -name 'libringmaster_worker_c.so' | head -n1)")
[ -f "$libdir/libringmaster_worker_c.so.1" ] || fail "no libringmaster_worker_c.so.1 (the SONAME) installed"
"${CC:-cc}" -std=c99 -Wall -Wextra -Werror -I"$inc" "$src/examples/c_worker.c" -o "$work/c_worker" \
  -L"$libdir" -lringmaster_worker_c -Wl,-rpath,"$libdir" || fail "a C worker does not build against the installed library"
readelf -d "$work/c_worker" | grep -q 'NEEDED.*libringmaster_worker_c.so.1' || fail "the C worker does not need the SONAME"
set +e
by_hand=$(env -u RINGMASTER_WORKER "$work/c_worker" 2>&1)
code=$?
set -e
[ "$code" = 64 ] || fail "the C worker run by hand exited $code, not 64: $by_hand"
grep -q "job types served: reverse word_count whoami" <<<"$by_hand" || fail "the C worker run by hand said: $by_hand"
