'use strict'
// The public entry point: the JS layer compiled from lib/ (see lib/index.ts).
module.exports = require('./lib/index.js')
