# Shared by scripts/test and scripts/demo: install missing Debian packages, configure, build.
EMBER_PACKAGES=(build-essential cmake ninja-build ccache pkg-config git libgtest-dev libgmock-dev
  libbenchmark-dev libopenblas-dev libblis-dev nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev
  clang libclang-rt-14-dev libpng-dev libedit-dev)

ember_install_deps() {
  local missing=()
  for p in "${EMBER_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  command -v npm >/dev/null || missing+=(npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ember_build BUILD_DIR [cmake args...]
ember_build() {
  local dir=$1
  shift
  cmake -S "$EMBER_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
