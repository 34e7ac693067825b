#!/usr/bin/env bash
# Builds libengine.so (NativeAOT publish of Engine.Native), the example, the benchmark and the C
# tests with CMake, then runs the CTest suite. Usage: native-interop/build.sh [extra ctest args]
# BUILD_DIR overrides the build folder (default native-interop/build).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${BUILD_DIR:-$here/build}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure "$@"
