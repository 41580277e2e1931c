# Homebrew formula for credsync, as a template: the release job (.github/workflows/ci.yml, on a
# tag v*) renders it with scripts/brew-formula, which fills in the repository, the version and the
# SHA-256 of the source tarball it attaches to that release (the upper-case placeholders in the
# url, sha256, homepage and head lines), and attaches the rendered credsync.rb beside it. To
# publish a release, copy that file into the tap as Formula/credsync.rb: that copy is the bump.
# The rendered formula also builds main (`brew install --HEAD credsync`).
#
# It builds the binary with cargo, installs the completions and man pages the binary renders
# (the Debian package ships the same ones, see Cargo.toml), and has a service: `brew services
# start credsync` loads a LaunchAgent that runs `credsync daemon --launchd` through the stable
# opt path (never a versioned Cellar path, which `brew upgrade` deletes), kept alive the way
# the agent `credsync service install` writes is (launchd/com.credsync.agent.plist): restarted
# after a failure, while a config error is waited out instead of failing every few seconds.
class Credsync < Formula
  desc "Keeps AWS SSO and assumed-role credentials fresh on disk for local development"
  homepage "https://github.com/@REPOSITORY@"
  url "https://github.com/@REPOSITORY@/releases/download/v@VERSION@/credsync-v@VERSION@.tar.gz"
  sha256 "@SHA256@"
  license "Apache-2.0"
  head "https://github.com/@REPOSITORY@.git", branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args
    generate_completions_from_executable(bin/"credsync", "completions")
    system bin/"credsync", "generate-man", buildpath/"man"
    man1.install buildpath.glob("man/*.1")
  end

  service do
    run [opt_bin/"credsync", "daemon", "--launchd"]
    keep_alive successful_exit: false
    throttle_interval 5
    process_type :background
    environment_variables PATH: std_service_path_env, CREDSYNC_LOG: "info"
    log_path var/"log/credsync.log"
    error_log_path var/"log/credsync.log"
  end

  test do
    assert_match(/^credsync \d+\.\d+\.\d+/, shell_output("#{bin}/credsync --version"))
    assert_match "credsync", shell_output("#{bin}/credsync completions bash")
    assert_path_exists man1/"credsync.1"
  end
end
