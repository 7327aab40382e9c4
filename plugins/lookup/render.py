# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""ansible.builtin.template's lookup without its deep copy of every variable."""

from __future__ import annotations

DOCUMENTATION = r"""
name: render
author:
  - aistack.hosting contributors (@aistack-hosting)
short_description: Render template files on the controller, as ansible.builtin.template's lookup does, cheaply
description:
  - Renders each template file with every variable of the task, exactly as the C(ansible.builtin.template) lookup does
    (same search path for the file and for the templates it includes or imports, same C(ansible_managed) and
    C(template_*) variables), but layers those variables under the template's own instead of deep-copying all of them
    for every file.
  - The deep copy is what made the builtin lookup slow here. A task's variables hold every role's defaults and every
    fact of the run (rendered files included), and copying them took about 0.18 s per file rendered on the 2-core
    machine of docs/performance.md, most of what a no-op run spent rendering projects on the controller.
  - Templates must not change variables they did not define (no C(.update()) or C(.append()) on a variable's value);
    the collection's templates change only objects they built themselves.
  - On ansible-core 2.18 it is the builtin lookup. It takes no options (the builtin's defaults apply).
options:
  _terms:
    description: Template files, searched like the builtin lookup's (the role's C(templates/) directory first).
    required: true
    type: list
    elements: path
seealso:
  - plugin: ansible.builtin.template
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Render a project's config files once, on the controller
  ansible.builtin.set_fact:
    __rendered: "{{ query('aistack.hosting.render', 'redis.conf.j2', 'users.acl.j2') }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description: The rendered text of each file, in order.
  type: list
  elements: raw
"""

import os
from collections import ChainMap

from ansible.errors import AnsibleError
from ansible.plugins.loader import lookup_loader
from ansible.plugins.lookup import LookupBase

try:  # the internals ansible-core 2.19's own template lookup uses
    from ansible.template import trust_as_template
    from ansible._internal._templating import _template_vars
    from ansible._internal._templating._engine import TemplateOptions, TemplateOverrides
except ImportError:
    _template_vars = None


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if _template_vars is None:
            builtin = lookup_loader.get('ansible.builtin.template', loader=self._loader, templar=self._templar)
            return builtin.run(terms, variables)
        # The builtin lookup's defaults (trim_blocks, the {{ }} and {# #} delimiters).
        options = TemplateOptions(escape_backslashes=False, overrides=TemplateOverrides.from_kwargs({'trim_blocks': True}))
        # Includes and imports resolve as in the builtin lookup: the file's directory,
        # then each search path's templates/ and the path itself.
        include_paths = [path for entry in variables.get('ansible_search_path', [])
                         for path in (os.path.join(entry, 'templates'), entry)]
        rendered = []
        for term in terms:
            path = self.find_file_in_search_path(variables, 'templates', term)
            if not path:
                raise AnsibleError(f"the template file {term} could not be found for the lookup")
            searchpath = [os.path.dirname(path), *include_paths]
            own = _template_vars.generate_ansible_template_vars(
                path=term, fullpath=path, include_ansible_managed='ansible_managed' not in variables)
            templar = self._templar.copy_with_new_env(available_variables=ChainMap(own, variables),
                                                      searchpath=searchpath)
            data = trust_as_template(self._loader.get_text_file_contents(path))
            rendered.append(templar._engine.template(data, options=options))
        return rendered
