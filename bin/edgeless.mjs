#!/usr/bin/env node
// The `edgeless` command (package.json "bin"): a thin launcher for the built CLI.
import { main } from '../dist/cli.js'

// Exit explicitly: a driver a resource loaded (a Redis client) must not keep a finished run alive.
process.exit(await main(process.argv.slice(2)))
