/**
 * `npm run discord:register`: registers Inkloom's commands with Discord, to one
 * server when DISCORD_DEV_GUILD_ID is set (instant), globally otherwise. It is a
 * bulk overwrite, so it runs from this script, not at every start.
 */
import { REST, Routes } from "discord.js";
import { ConfigError, loadConfig } from "../../src/app/config.ts";
import { discordCommands } from "./command-data.ts";

export async function registerCommands(discord: {
  token: string;
  applicationId: string;
  apiRoot: string;
  devGuildId?: string;
}): Promise<number> {
  const rest = new REST({ api: discord.apiRoot, timeout: 15_000 }).setToken(discord.token);
  const route =
    discord.devGuildId === undefined
      ? Routes.applicationCommands(discord.applicationId)
      : Routes.applicationGuildCommands(discord.applicationId, discord.devGuildId);
  const body = discordCommands();
  await rest.put(route, { body });
  return body.length;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const config = loadConfig(process.env);
    if (config.discord === undefined) {
      process.stderr.write("Set DISCORD_TOKEN and DISCORD_APPLICATION_ID to register the Discord commands.\n");
      process.exit(2);
    }
    const count = await registerCommands(config.discord);
    const where = config.discord.devGuildId ? `server ${config.discord.devGuildId}` : "all servers (global)";
    process.stdout.write(`Registered ${count} commands for ${where}.\n`);
  } catch (error) {
    process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
