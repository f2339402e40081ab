export * from './lib/index'
