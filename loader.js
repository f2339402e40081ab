'use strict'
// Loads warren's native core (the Rust addon built from src/) for the running platform.
//
// Where the addon comes from, in this order:
//   1. WARREN_NATIVE_LIBRARY_PATH, when set: the path of a `.node` file to load instead (relative
//      paths from the working directory); nothing else is tried then.
//   2. `warren.<platform>.node` next to this file: what `npm run build` writes in a checkout.
//   3. the platform package `warren-<platform>` (for example `warren-linux-x64-gnu`): npm installs
//      the one that matches this machine, as an optional dependency of `warren`.
// When none loads, the error says which platform package was expected, why each place failed and
// how to get a binary. Its types are native.d.ts, generated from the Rust code by `napi build`.

const { existsSync, readFileSync } = require('node:fs')
const { join, resolve } = require('node:path')

const { name: packageName, version } = require('./package.json')

// The platforms with a prebuilt package (the `napi.targets` of package.json), by npm's names.
const SUPPORTED = [
  'linux-x64-gnu',
  'linux-arm64-gnu',
  'linux-x64-musl',
  'linux-arm64-musl',
  'darwin-x64',
  'darwin-arm64',
  'win32-x64-msvc',
]

function isMusl() {
  // Node's report names the glibc it runs on, and only then: the C library of this process, whatever
  // the system's ldd says.
  if (process.report && typeof process.report.getReport === 'function') {
    const excludeNetwork = process.report.excludeNetwork
    process.report.excludeNetwork = true // no reverse DNS look-ups of open sockets
    try {
      return !process.report.getReport().header.glibcVersionRuntime
    } catch {
      // Fall through to ldd.
    } finally {
      process.report.excludeNetwork = excludeNetwork
    }
  }
  // Alpine and other musl systems ship an `ldd` script that names musl.
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    return false
  }
}

/** The napi-rs name of this platform, e.g. `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const abi = isMusl() ? 'musl' : 'gnu'
    return arch === 'arm' ? `linux-arm-${abi}eabihf` : `linux-${arch}-${abi}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function describe(error, file) {
  if (error && error.code === 'MODULE_NOT_FOUND') return 'not found'
  const message = String((error && error.message) || error).split('\n')[0]
  // dlopen reports a binary for another CPU as a missing file.
  const hint = file && existsSync(file) && /No such file/.test(message) ? ' (the file is there: is it built for another CPU or C library?)' : ''
  return `failed to load: ${message}${hint}`
}

function load() {
  const platform = platformName()
  const localFile = `${packageName}.${platform}.node`
  const platformPackage = `${packageName}-${platform}`
  const tried = []

  // An explicit path is the only place looked at: loading anything else would hide the mistake.
  const override = process.env.WARREN_NATIVE_LIBRARY_PATH
  if (override) {
    try {
      return require(resolve(override)) // relative to the working directory
    } catch (error) {
      const failed = new Error(`${packageName}: WARREN_NATIVE_LIBRARY_PATH=${override}: ${describe(error, resolve(override))}. Unset it to load ${localFile} or the package ${platformPackage}.`)
      failed.code = 'WARREN_NATIVE_BINDING_MISSING'
      failed.cause = error
      throw failed
    }
  }

  try {
    return require(join(__dirname, localFile))
  } catch (error) {
    tried.push(`${join(__dirname, localFile)} (a build from source): ${describe(error, join(__dirname, localFile))}`)
  }

  let installed = null
  try {
    installed = require(`${platformPackage}/package.json`).version
  } catch (error) {
    tried.push(`the package ${platformPackage}: ${error && error.code === 'MODULE_NOT_FOUND' ? 'not installed' : describe(error)}`)
  }
  if (installed !== null) {
    if (installed !== version) {
      tried.push(`the package ${platformPackage}: version ${installed} is installed, ${packageName} ${version} needs ${version}`)
    } else {
      try {
        return require(platformPackage)
      } catch (error) {
        tried.push(`the package ${platformPackage}@${installed}: ${describe(error, error && error.code !== 'MODULE_NOT_FOUND' && require.resolve(platformPackage))}`)
      }
    }
  }

  const lines = [`${packageName}: no native binary loaded for this platform (${platform}, Node ${process.version}).`]
  if (SUPPORTED.includes(platform)) {
    lines.push(
      `On ${platform} it comes from the package ${platformPackage}@${version}, an optional dependency of ${packageName} that npm installs on matching machines.`,
      'Tried:',
      ...tried.map((line) => `  - ${line}`),
      'To get it, either:',
      `  - install it: run \`npm install\` again where the code runs, with optional dependencies (no --omit=optional or --no-optional, no omit=optional in .npmrc; \`npm install --include=optional\` overrides that). node_modules copied from a machine of another OS, CPU or C library holds that machine's package, not this one's. Or`,
      `  - build it from source (needs Rust, https://rustup.rs): clone the repository, run \`npm install && npm run build\` there, which writes ${localFile}, then install that checkout (\`npm install /path/to/checkout\`) or set WARREN_NATIVE_LIBRARY_PATH to the .node file.`,
    )
  } else {
    lines.push(
      `There is no prebuilt binary for ${platform}; prebuilt ones exist for ${SUPPORTED.join(', ')}.`,
      'Tried:',
      ...tried.map((line) => `  - ${line}`),
      `To run here, build it from source (needs Rust, https://rustup.rs): clone the repository, run \`npm install && npm run build\` there, which writes ${localFile}, then install that checkout (\`npm install /path/to/checkout\`) or set WARREN_NATIVE_LIBRARY_PATH to the .node file.`,
    )
  }
  const error = new Error(lines.join('\n'))
  error.code = 'WARREN_NATIVE_BINDING_MISSING'
  throw error
}

module.exports = load()
