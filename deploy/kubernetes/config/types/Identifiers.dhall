{- The seed's "Identifier Configuration": the identifier lengths meshStack is configured with.
   AWS requires at most 16 for workspaces (customers) and 30 for projects. -}
{ customer_identifier_length : Natural, project_identifier_length : Natural }
