// Where the benchmark finds test/interop/inn-sandbox.sh: $INN_SANDBOX if set,
// else above the compiled tree, else above the current folder.
import { interopScript } from "../test/helpers/interop.js";

export const SANDBOX = interopScript("inn-sandbox.sh", "INN_SANDBOX");
