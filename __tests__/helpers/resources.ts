import { randomUUID } from 'node:crypto'
import type { ResourceClass } from '../../lib/workflow/resource'

/** The workflow id the resources made by {@link makeResource} are created for (one per test file). */
export const WORKFLOW_ID = randomUUID()

/** Build one resource instance the way the workflow runner does, collecting its warnings. */
export async function makeResource(cls: ResourceClass, name: string, config: Record<string, string>, baseDir?: string) {
  const warnings: string[] = []
  const fn = await cls.create({
    name,
    workflowId: WORKFLOW_ID,
    config,
    ...(baseDir ? { baseDir } : {}),
    warn: (m) => {
      warnings.push(m)
    },
  })
  return { fn, warnings }
}
