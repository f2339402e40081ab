'use strict'
// The native core, as lib/ imports it (`../native`): loaded by loader.js, typed by native.d.ts.
module.exports = require('./loader.js')
