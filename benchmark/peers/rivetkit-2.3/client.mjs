export { createClient } from "rivetkit/client";
