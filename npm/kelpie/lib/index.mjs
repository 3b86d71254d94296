// Kelpie's Node API as an ES module: the same client as `require('kelpie')` (lib/index.js),
// its calls also as named exports, bound to the default client (`import { connect } from 'kelpie'`).
import api from './index.js';

export default api;
export const connect = api.connect.bind(api);
export const disconnect = api.disconnect.bind(api);
export const start = api.start.bind(api);
export const stop = api.stop.bind(api);
export const restart = api.restart.bind(api);
export const reload = api.reload.bind(api);
// `delete` is a reserved word: exported under its name through an export clause.
const deleteProcesses = api.delete.bind(api);
export { deleteProcesses as delete };
export const reset = api.reset.bind(api);
export const list = api.list.bind(api);
export const describe = api.describe.bind(api);
export const sendSignalToProcessName = api.sendSignalToProcessName.bind(api);
export const sendSignalToProcessId = api.sendSignalToProcessId.bind(api);
export const sendDataToProcessId = api.sendDataToProcessId.bind(api);
export const flush = api.flush.bind(api);
export const dump = api.dump.bind(api);
export const reloadLogs = api.reloadLogs.bind(api);
export const killDaemon = api.killDaemon.bind(api);
export const launchBus = api.launchBus.bind(api);
export const scale = api.scale.bind(api);
export const getVersion = api.getVersion.bind(api);
export const getKelpieVersion = api.getKelpieVersion.bind(api);
export const disconnectBus = api.disconnectBus.bind(api);
export const trigger = api.trigger.bind(api);
export const ping = api.ping.bind(api);
export const custom = api.custom;
export const Kelpie = api.Kelpie;
export const KelpieError = api.KelpieError;
